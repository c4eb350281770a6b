// Types of api.js, for the unit tests and editors; the browser loads the .js file only.

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  [member: string]: unknown;
}

export class ApiError extends Error {
  constructor(status: number, problem: Problem | undefined);
  readonly status: number;
  readonly problem: Problem | undefined;
}

export interface Identity {
  tenant: string | undefined;
  admin: boolean;
}

type FetchLike = (url: string, init: { headers: Record<string, string>; signal?: AbortSignal }) => Promise<{
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  json(): Promise<unknown>;
  text(): Promise<string>;
}>;

export interface Api {
  identify(): Promise<Identity>;
  tenants(): Promise<string[] | undefined>;
  channels(tenant: string, options?: { signal?: AbortSignal }): Promise<unknown>;
  skuPage(tenant: string, options?: { prefix?: string; after?: string; limit?: number; signal?: AbortSignal }): Promise<{ items: unknown[]; next: string | undefined }>;
  sku(tenant: string, sku: string, options?: { signal?: AbortSignal }): Promise<unknown>;
  metricsText(options?: { signal?: AbortSignal }): Promise<string>;
  streamUrl(tenant: string): string;
}

export const skuPageSize: number;
export const requestTimeoutMs: number;
export const probeTenant: string;
export function problemMessage(status: number, problem: Problem | undefined): string;
export function keyTenantOf(problem: Problem | undefined | null): string | undefined;
export function skuPageOf(body: unknown): { items: unknown[]; next: string | undefined };
export function tenantIdsOf(body: unknown): string[];
export function createApi(options: { key: string; baseUrl?: string; fetchImpl?: FetchLike }): Api;
