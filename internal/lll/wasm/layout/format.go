package layout

// Format names the contract this package describes: the memory layout,
// the input and output regions, the exports and the trap codes. A bundle
// records the format of its module, and a host runs only a module of its
// own format; any change to the contract gets a new name.
const Format = "lll-wasm-6"
