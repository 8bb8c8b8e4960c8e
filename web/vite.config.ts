import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

// The build is served by the API (api/web_app.py) from web/dist; `npm run dev` proxies the
// API so that the page and the API share an origin, as they do when served.
export default defineConfig({
  plugins: [preact()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, target: "es2022" },
  server: {
    proxy: { "/v1": "http://127.0.0.1:8000", "/healthz": "http://127.0.0.1:8000" },
  },
});
