// Lint rules; src/core must stay pure: no clock, no randomness, no I/O.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const impureGlobals = ['Date', 'process', 'setTimeout', 'setInterval', 'setImmediate', 'clearTimeout',
  'clearInterval', 'clearImmediate', 'queueMicrotask', 'crypto', 'performance', 'fetch', 'require',
  'Buffer', 'console'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'web/vendor/**', '.cache/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { console: 'readonly', process: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', ...impureGlobals.map((name) => ({ name, message: `src/core is pure: ${name} is not allowed; pass it in with the command.` }))],
      'no-restricted-properties': ['error',
        { object: 'Math', property: 'random', message: 'src/core is pure: randomness comes in with the command.' },
        { object: 'globalThis', message: 'src/core is pure.' }],
      'no-restricted-imports': ['error', { patterns: [
        { regex: '^node:', message: 'src/core is pure: no node:* modules.' },
        { regex: '^(?!\\.)', message: 'src/core is pure: no packages, only relative imports.' },
      ] }],
    },
  },
);
