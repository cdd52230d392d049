/**
 * The report's client files, read at run time from `client/` beside this module: the
 * sources hold them in src/report/html/client/, and the build copies them to
 * dist/report/html/client/ (scripts/copy-report-client.mjs), which the package ships.
 */
import { readFile } from 'node:fs/promises';
import type { ClientAssets } from './page.js';

const CLIENT_DIR = new URL('./client/', import.meta.url);

let loaded: Promise<ClientAssets> | undefined;

export function clientAssets(): Promise<ClientAssets> {
  loaded ??= Promise.all([readFile(new URL('report.css', CLIENT_DIR), 'utf8'), readFile(new URL('report.js', CLIENT_DIR), 'utf8')]).then(([css, script]) => ({ css, script }));
  return loaded;
}
