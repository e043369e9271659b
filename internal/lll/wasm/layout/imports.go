package layout

// ImportModule is the module name of every function a module imports: the
// host calls of its program, each imported under the call's name
// ("lll"."kv.get"). See the package doc's Imports.
const ImportModule = "lll"

// RouterExport returns the export name of the router name.
func RouterExport(name string) string { return "router:" + name }

// ActionLeafSize is the size of one value of an action's argument record:
// an i64 in the representation of its kind (see the package doc).
const ActionLeafSize = 8

// AnyData marks a leaf of kind Any that is a value below the span's data:
// AnyData | i, i the index of its path in codegen's Output.Data, whose
// value the host reads from the span. A leaf of kind Any without it is
// the index of a value in the host's table of the run's values.
const AnyData = 1 << 62
