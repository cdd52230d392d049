/**
 * The resource protocol's manifest keys and messages (docs/resource-protocol.md): the
 * `command` and `http` kinds load with their defaults, a bad key is `file:LINE: key: message`
 * (exit 2), and the JSON Schemas checked in under docs/schemas/ are exactly what the code
 * checks handler output with.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_SCHEMAS, protocolSchemaText, deleteAnswerLine, listRecord, parseLine, ProtocolViolation } from '../../src/backends/handler/protocol.js';
import { ExitCode, formatManifestIssue, ManifestError } from '../../src/errors.js';
import { parseManifest } from '../../src/manifest/load.js';

const FILE = 'reaper.yaml';
const parse = (lines: string[], env: Record<string, string> = {}) => parseManifest(`${lines.join('\n')}\n`, { file: FILE, baseDir: '/srv/reaper', env });

function rejects(lines: string[]): string[] {
  let caught: unknown;
  try {
    parse(lines);
  } catch (error) {
    caught = error;
  }
  expect(caught, 'the manifest was accepted').toBeInstanceOf(ManifestError);
  expect((caught as ManifestError).exitCode).toBe(ExitCode.usage);
  return (caught as ManifestError).issues.map(formatManifestIssue);
}

const head = ['version: 1', 'owners: [{ static: ["a"] }]', 'resources:'];

describe('command and http resource kinds in the manifest', () => {
  it('loads a command type with its defaults: conditional, 60 s, 1 MiB lines, 256 MiB per call; a string runs under sh, a list as is', () => {
    const m = parse([...head, '  - name: sessions', '    command:', '      list: ./h.sh list', '      delete: [./h.sh, delete]', '    owner: { attribute: owner }']);
    expect(m.resources[0]!.location).toEqual({
      kind: 'command',
      list: { shell: './h.sh list' },
      delete: { argv: ['./h.sh', 'delete'] },
      cwd: '/srv/reaper',
      env: {},
      conditional: true,
      allowUnconditional: false,
      timeoutMs: 60_000,
      maxLineBytes: 1024 * 1024,
      maxOutputBytes: 256 * 1024 * 1024,
    });
    expect(m.resources[0]!.owners[0]!.extractor).toEqual({ from: 'attribute', name: 'owner' });
  });

  it('loads an http type: token file and CA resolved against the manifest, url without a trailing slash', () => {
    const m = parse([...head, '  - name: tenants', '    http: { url: "https://h.example/reaper/", token: { file: tok }, ca: ca.pem, timeout: 5s }', '    owner: { attribute: t }', '    protect: [{ attribute: { pinned: "yes" } }]']);
    expect(m.resources[0]!.location).toMatchObject({ kind: 'http', url: 'https://h.example/reaper', token: { file: '/srv/reaper/tok' }, ca: '/srv/reaper/ca.pem', timeoutMs: 5000, mark: false, restore: false });
    expect(m.resources[0]!.protect).toEqual([{ kind: 'attribute', match: { pinned: 'yes' } }]);
  });

  it('names file, line and key of each mistake', () => {
    const issues = rejects([
      ...head,
      '  - name: a', //                                 4
      '    command:', //                                5
      '      list: ./h.sh', //                          6
      '      timeout: 30', //                           7
      '      allowUnconditional: true', //              8
      '      mark: ./h.sh mark', //                     9
      '    owner: { column: owner }', //               10
      '  - name: b', //                                11
      '    http: { url: "ftp://x", bearer: t }', //    12
      '    owner: { attribute: o }', //                13
      '    mark: tag', //                              14
    ]);
    expect(issues).toEqual([
      'reaper.yaml:5: resources[0].command.delete: is required',
      'reaper.yaml:7: resources[0].command.timeout: "30" has no unit; write e.g. 30s, 30m or 30h',
      'reaper.yaml:12: resources[1].http.url: expected an http:// or https:// URL',
      'reaper.yaml:12: resources[1].http.bearer: unknown key "bearer"',
    ]);
    const cross = rejects([...head, '  - name: a', '    command: { list: x, delete: y, allowUnconditional: true, mark: z }', '    owner: { column: owner }', '    mark: tag']);
    expect(cross).toEqual([
      'reaper.yaml:5: resources[0].command.allowUnconditional: allowUnconditional applies only to a handler that declares conditional: false',
      'reaper.yaml:5: resources[0].command.mark: a handler that marks also unmarks: give both command.mark and command.unmark',
      'reaper.yaml:6: resources[0].owner.column: a command resource cannot read its owner from column; use attribute or keyPattern',
      'reaper.yaml:7: resources[0].mark: a command resource is marked by its handler: command.mark and command.unmark',
    ]);
  });
});

describe('protocol messages', () => {
  it('docs/schemas/*.json are what the code checks with (run `npm run build && npm run schema` when this fails)', () => {
    for (const name of Object.keys(PROTOCOL_SCHEMAS) as (keyof typeof PROTOCOL_SCHEMAS)[]) {
      const committed = readFileSync(new URL(`../../docs/schemas/${name}.json`, import.meta.url), 'utf8');
      expect(committed, name).toBe(protocolSchemaText(name));
    }
  });

  it('refuses what a hostile handler might send, saying which line and why', () => {
    const bad = (schema: Parameters<typeof parseLine>[0], text: string) => {
      try {
        parseLine(schema, text, 'line 3');
      } catch (error) {
        expect(error).toBeInstanceOf(ProtocolViolation);
        return (error as Error).message;
      }
      throw new Error(`accepted ${text}`);
    };
    expect(bad(listRecord, '{"id": "a", "fingerprint"')).toMatch(/^line 3: not JSON: /);
    expect(bad(listRecord, '{"id": "", "fingerprint": "f", "createdAt": null}')).toMatch(/^line 3: id: Too small/);
    expect(bad(listRecord, '{"id": "a", "fingerprint": "f", "createdAt": "yesterday"}')).toMatch(/^line 3: createdAt: /);
    expect(bad(listRecord, '{"id": "a", "fingerprint": "f", "createdAt": null, "attributes": {"owner": 7}}')).toMatch(/^line 3: attributes.owner: /);
    expect(bad(deleteAnswerLine, '{"id": "a", "result": "gone"}')).toMatch(/^line 3: result: /);
    expect(bad(deleteAnswerLine, '{"id": "a", "result": "error"}')).toBe('line 3: message: an error answer needs a message in "{\\"id\\": \\"a\\", \\"result\\": \\"error\\"}"');
    expect(parseLine(deleteAnswerLine, '{"id": "a", "result": "changed"}', 'x')).toEqual({ id: 'a', result: 'changed' });
  });
});
