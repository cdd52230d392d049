/**
 * docs/architecture.md describes the layers of src/ as eslint.config.js enforces them: these
 * checks keep its table in the lint's order and make a new folder of src/ show up there.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const page = readFileSync(path.join(ROOT, 'docs/architecture.md'), 'utf8');

/** LAYERS of eslint.config.js, bottom first: each a list of folders and root files of src/. */
function lintLayers(): string[][] {
  const config = readFileSync(path.join(ROOT, 'eslint.config.js'), 'utf8');
  const body = /const LAYERS = \[([\s\S]*?)\n\];/.exec(config)![1]!;
  return [...body.matchAll(/\[([^\]]*)\]/g)].map((m) => [...m[1]!.matchAll(/'([^']+)'/g)].map((n) => n[1]!));
}

/** The first cells of the "Layers" table: the `src/…` names each row links. */
function pageLayers(text: string): string[][] {
  const section = text.slice(text.indexOf('## Layers'), text.indexOf('\n## ', text.indexOf('## Layers') + 1));
  return section
    .split('\n')
    .filter((line) => line.startsWith('| [`src/'))
    .map((line) => [...line.split('|')[1]!.matchAll(/`src\/([^`/]+)\/?`/g)].map((m) => m[1]!));
}

describe('docs/architecture.md', () => {
  it('lists the layers of eslint.config.js, in its order', () => {
    const layers = lintLayers();
    expect(layers.length).toBeGreaterThanOrEqual(10);
    expect(pageLayers(page)).toEqual(layers);
  });

  it('names every folder of src/', () => {
    const folders = readdirSync(path.join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(folders.length).toBeGreaterThan(5);
    expect(folders.filter((name) => !page.includes(`src/${name}/`))).toEqual([]);
  });
});
