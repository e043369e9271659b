// Package wasm is the home of the AOT-WASM backend: .lll programs (package
// ir) compiled ahead of time to WebAssembly 1.0 modules and run in a
// sandbox (wazero), held to the interpreter (package eval) by a shadow run
// that must never diverge.
//
// The backend is one phase a package, as the rest of internal/lll:
//
//	enc       a deterministic WebAssembly 1.0 binary encoder: LEB128,
//	          sections in their fixed order, instruction sequences
//	layout    the contract between the host and the guest: the field table
//	          a span is decoded into, the output words, the exported
//	          globals (fuel, trap) and the trap codes
//	codegen   ir.Program -> module (enc.Module), for what it covers;
//	          anything else is refused with ErrUnsupported, never
//	          approximated
//	vm        the host side: compiles a module with wazero, links the
//	          host calls the capabilities grant, writes a span's field
//	          table into an instance's memory, calls a validator or a
//	          router, reads its verdict (or actions) and fuel, keeps a
//	          pool of instances
//	wasmtest  test helpers: every module a test emits is checked by
//	          wasm-validate (Debian's wabt) and wazero's CompileModule
//
// What is covered today is the span validators whose rules are top-level
// field rules (require/allow with the formats the canonical span contract
// uses, in [...] over strings, reject unknown fields) and field rules below
// data (require field "data.gross" as "number"), with guards and check
// rules over a subset of expressions (constants, the string fields' values,
// values below data, the instant of when, durations, has, feature flags,
// policy values, ==, !=, the orders, in over list literals, matches, len,
// lower and upper, concatenation, the arithmetic of numbers, durations and
// instants, not, and, or, the host calls env.get, kv.get and
// crypto.verify), fuel and bytes charged where the interpreter counts its
// steps and bytes, and the routers (of spans, and of other inputs that
// do not read them), whose actions are the
// module's imported host calls, and the event validators (their guards
// and check rules over the event's values, the kernels percentile and
// window_count answered by the host between runs; the emitted event is
// built by the host);
// codegen's package doc has the details.
// A module imports exactly the host calls its program makes, and the
// host links only those the bundle's capabilities grant. Other
// expressions, other kernels, pipelines and routers that read a derived
// event or a webhook are not compiled yet; codegen refuses them or leaves
// them to the interpreter.
package wasm
