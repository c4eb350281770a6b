// One way to build Ajv (draft 2020-12 with formats) across the CommonJS/ESM boundary.

import ajvModule from 'ajv/dist/2020.js';
import formatsModule from 'ajv-formats';
import type { Options } from 'ajv/dist/2020.js';

type Ajv2020Class = typeof ajvModule.default;
type AddFormats = typeof formatsModule.default;

const Ajv2020 = ((ajvModule as unknown as { default?: Ajv2020Class }).default ?? ajvModule) as Ajv2020Class;
const addFormats = ((formatsModule as unknown as { default?: AddFormats }).default ?? formatsModule) as AddFormats;

export type Ajv = InstanceType<Ajv2020Class>;

/** An Ajv for JSON Schema 2020-12 with the standard formats; strict so a typo in a schema fails loudly. */
export function createAjv(options: Options = {}): Ajv {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true, ...options });
  addFormats(ajv);
  return ajv;
}
