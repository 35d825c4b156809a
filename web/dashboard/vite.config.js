// The dashboard's build: one script and one style sheet with content-hashed
// names under assets/, nothing inlined (the Content-Security-Policy allows
// files from this origin only), JSX compiled for Preact.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2020',
    reportCompressedSize: false,
  },
});
