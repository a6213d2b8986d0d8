package native

import (
	"encoding/json"
	"fmt"
)

// LimitError is a policy the API server cannot hold or evaluate as native policies.
type LimitError struct {
	Reason string
}

func (e *LimitError) Error() string {
	return "the policy is too large for native admission policies: " + e.Reason
}

func (c *compiler) checkLimits(res *Result) error {
	for _, o := range res.Objects() {
		b, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("encoding %T: %w", o, err)
		}
		res.Size = max(res.Size, len(b))
	}
	return nil
}
