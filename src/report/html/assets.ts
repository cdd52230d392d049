/**
 * The report's client files, read from the package at run time: `src/report/html/client/`
 * holds them (package.json `files` ships that folder). The path is the same from the
 * sources (src/report/html) and the build (dist/report/html): three levels up is the
 * package root.
 */
import { readFile } from 'node:fs/promises';
import type { ClientAssets } from './page.js';

const CLIENT_DIR = new URL('../../../src/report/html/client/', import.meta.url);

let loaded: Promise<ClientAssets> | undefined;

export function clientAssets(): Promise<ClientAssets> {
  loaded ??= Promise.all([readFile(new URL('report.css', CLIENT_DIR), 'utf8'), readFile(new URL('report.js', CLIENT_DIR), 'utf8')]).then(([css, script]) => ({ css, script }));
  return loaded;
}
