// Lint rules for reaper: typescript-eslint's recommended set, plus the habits that keep
// the engine pure and errors typed.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

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
  {
    files: ['src/engine/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'http', 'pg', 'mysql2*', 'better-sqlite3', '@aws-sdk/*'], message: 'The engine is pure: no I/O imports.' },
            { group: ['../backends/*', '../state/*', '../cli/*', '../daemon/*'], message: 'The engine depends on nothing with I/O.' },
          ],
        },
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
