// A .wasm import is a compiled module in Workers (wrangler, workerd "wasm" modules).
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
