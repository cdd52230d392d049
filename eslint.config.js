// Lint rules for reaper: typescript-eslint's recommended set, plus the habits that keep
// the engine pure, errors typed and every import pointing down the layers.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

/**
 * The layers of src/, bottom first: a module imports only from the layers below its own,
 * never from its own layer's other folders or from above. Derived from the code (and the
 * README's Layout): the manifest is what everything reads; the engine judges with it, pure;
 * backends and state stores do the I/O; liveness answers from state and SQL sources, and
 * lease/ is the lease protocol its daemon and clients share; report shapes and renders the
 * documents that run/ (audit, reap, restore) produces; the daemon and the clients serve or
 * hold leases; the simulator drives the engine and the clients; the CLI and the library
 * entry sit on top. Root files: errors.ts is below everything, version.ts reads the state
 * stores' schema versions, index.ts re-exports everything.
 */
const LAYERS = [
  ['errors.ts'],
  ['util'],
  ['manifest'],
  ['engine'],
  ['sql'],
  ['backends', 'state'],
  ['liveness', 'lease', 'version.ts'],
  ['report'],
  ['run'],
  ['daemon', 'client'],
  ['sim'],
  ['cli'],
  ['index.ts'],
];

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** An import of `target` (a folder or a root file) from a module `depth` folders below src/. */
const importOf = (target, depth) => {
  const up = depth === 0 ? '\\./' : escape('../'.repeat(depth));
  return target.endsWith('.ts') ? `${up}${escape(target.replace(/\.ts$/, '.js'))}$` : `${up}${escape(target)}/`;
};

/** One config block per module of the layers and depth under src/: what it may not import. */
function layerRules() {
  const blocks = [];
  LAYERS.forEach((layer, index) => {
    const above = LAYERS.slice(index + 1).flat();
    for (const name of layer) {
      const forbidden = [...above, ...layer.filter((peer) => peer !== name)];
      if (forbidden.length === 0) continue;
      const message = `layering: src/${name} may import only from the layers below it (${LAYERS.slice(0, index).flat().join(', ') || 'none'}); see LAYERS in eslint.config.js`;
      const depths = name.endsWith('.ts') ? [0] : [1, 2, 3];
      for (const depth of depths) {
        const files = name.endsWith('.ts') ? [`src/${name}`] : [`src/${name}/${'*/'.repeat(depth - 1)}*.ts`];
        blocks.push({ files, rules: { 'no-restricted-imports': ['error', { patterns: [{ regex: `^(${forbidden.map((t) => importOf(t, depth)).join('|')})`, message }] }] } });
      }
    }
  });
  return blocks;
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'reaper-demo/**', '.bench/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...layerRules(),
  {
    // A rule of its own (the typescript-eslint twin of no-restricted-imports), so the layer rules above still hold here.
    files: ['src/engine/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['node:*', 'fs', 'http', 'pg', 'mysql2*', 'better-sqlite3', '@aws-sdk/*'], message: 'The engine is pure: no I/O imports.' }] },
      ],
    },
  },
  {
    files: ['bin/*', 'scripts/**/*.mjs', 'bench/**/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    // The report page's own script: a classic browser script, no modules, no Node.
    files: ['src/report/html/client/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser } },
  },
);
