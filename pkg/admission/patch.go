package admission

import (
	"gomodules.xyz/jsonpatch/v2"
)

// jsonPatchAdd is the one operation the mutating webhook ever sends.
func jsonPatchAdd(path string, value int32) jsonpatch.JsonPatchOperation {
	return jsonpatch.JsonPatchOperation{Operation: "add", Path: path, Value: value}
}
