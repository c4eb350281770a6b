// Static files (the dashboard) from one folder at `/`, streamed with their content type; nothing outside the folder, nothing under /v1/.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { problem } from './problem.js';

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** The file a URL path names under `root`, or undefined when it is malformed or would leave the folder. */
export function resolveUnder(root: string, urlPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const base = resolve(root);
  const target = resolve(base, `.${decoded.startsWith('/') ? '' : '/'}${decoded}`);
  return target === base || target.startsWith(base + sep) ? target : undefined;
}

async function fileAt(path: string): Promise<{ path: string; size: number } | undefined> {
  const found = await stat(path).catch(() => undefined);
  if (found === undefined) return undefined;
  if (found.isFile()) return { path, size: found.size };
  if (!found.isDirectory()) return undefined;
  const index = await stat(join(path, 'index.html')).catch(() => undefined);
  return index?.isFile() === true ? { path: join(path, 'index.html'), size: index.size } : undefined;
}

/** The API's own paths: an unknown one is an unknown route, whatever the folder holds. */
const isApiPath = (path: string): boolean => path === '/v1' || path.startsWith('/v1/');

export const staticFiles: FastifyPluginAsync<{ root: string }> = async (app, { root }) => {
  app.get('/*', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    if (isApiPath(path)) {
      reply.callNotFound();
      return reply;
    }
    const target = resolveUnder(root, path);
    const file = target === undefined ? undefined : await fileAt(target);
    if (file === undefined) throw problem('NOT_FOUND', `no file ${path}`);
    return reply
      .type(contentTypes[extname(file.path).toLowerCase()] ?? 'application/octet-stream')
      .header('content-length', file.size)
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-cache')
      .send(createReadStream(file.path));
  });
};
