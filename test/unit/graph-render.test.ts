import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/manifest/load.js';
import { graphDot } from '../../src/report/graph.js';

const hasDot = spawnSync('dot', ['-V'], { stdio: 'ignore' }).status === 0;
/** Outside CI a missing Graphviz skips its test; under CI=true it fails (.ci/run installs it). */
const inCI = process.env.CI === 'true';

// The owner pattern holds a quote and a backslash followed by "n": neither may turn into a line break.
const MANIFEST = `
version: 1
connections:
  blobs: { kind: s3, region: us-east-1, endpoint: "http://127.0.0.1:1", forcePathStyle: true }
resources:
  - name: upload-blobs
    s3: { connection: blobs, bucket: uploads, prefix: tmp/ }
    owner: { keyPattern: '^tmp/(?<owner>[^/"\\n]+)', key: "session:{value}" }
`;

const manifest = () => parseManifest(MANIFEST, { file: 'graph.yaml', baseDir: '/tmp', env: {} });

const unescapeSvg = (s: string) =>
  s.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n))).replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The text lines graphviz drew inside the element whose title is `title`. */
function svgTexts(svg: string, title: string): string[] | undefined {
  for (const g of svg.matchAll(/<g id="[^"]*" class="(?:node|edge)">\s*<title>([^<]*)<\/title>([\s\S]*?)<\/g>/g)) {
    if (unescapeSvg(g[1]!) === title) return [...g[2]!.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => unescapeSvg(m[1]!));
  }
  return undefined;
}

describe('graphDot', () => {
  it('breaks a node label with one \\n escape and escapes the quotes and backslashes of a pattern once', () => {
    const dot = graphDot(manifest());
    expect(dot).toContain('\n  "__keys" [label="live keys\\nleases", shape=ellipse];\n');
    expect(dot).toContain('\n  "upload-blobs" [label="upload-blobs\\n(s3)", shape=box];\n');
    expect(dot).toContain('\n  "upload-blobs" -> "__keys" [label="keyPattern ^tmp/(?<owner>[^/\\"\\\\n]+) as session:{value}"];\n');
  });

  it.skipIf(!hasDot && !inCI)('renders as two lines with graphviz, and the pattern as written', () => {
    expect(hasDot, 'Graphviz is missing: apt-get install graphviz').toBe(true);
    const out = spawnSync('dot', ['-Tsvg'], { input: graphDot(manifest()), encoding: 'utf8' });
    expect(out.status).toBe(0);
    expect(svgTexts(out.stdout, 'upload-blobs')).toEqual(['upload-blobs', '(s3)']);
    expect(svgTexts(out.stdout, '__keys')).toEqual(['live keys', 'leases']);
    expect(svgTexts(out.stdout, 'upload-blobs->__keys')).toEqual(['keyPattern ^tmp/(?<owner>[^/"\\n]+) as session:{value}']);
  });
});
