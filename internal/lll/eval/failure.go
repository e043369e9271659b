package eval

import (
	"fmt"
	"strings"

	"github.com/loglineos/loglineos/internal/lll/diag"
	"github.com/loglineos/loglineos/internal/lll/eval/spanfield"
	"github.com/loglineos/loglineos/internal/lll/ir"
	"github.com/loglineos/loglineos/internal/span"
)

// Why says why a span fails a validator, as a second backend (a
// WebAssembly module) reports it.
type Why uint8

// The reasons a span fails.
const (
	WhyRequired   Why = iota + 1 // a required field is absent
	WhyEmpty                     // a required string field is present but empty
	WhyNotRFC3339                // when is not RFC 3339
	WhyNotOneOf                  // a top-level string field is not one of the rule's values
	WhyUnknown                   // a member the closed rule does not allow
	WhyCheck                     // a check's condition does not hold
	WhyBudget                    // the step budget ran out (LLL100)
	WhyFault                     // an expression failed at run time (Failure.Fault says how)
	WhyFormat                    // the value of a field below data (data.gross) or of a string field does not match the rule's format
	WhyHost                      // a host call (Failure.Name) failed with Failure.Host (LLL104, or the host's own *Error)
)

// Fault is how an expression failed at run time, as a second backend
// reports it (WhyFault).
type Fault uint8

// The run-time faults.
const (
	FaultOverflow Fault = iota + 1 // arithmetic overflow in A Op B (LLL103)
	FaultDivZero                   // division by zero (LLL103)
	FaultOrder                     // A and B cannot be ordered (LLL102)
	FaultBytes                     // the byte budget (Failure.Budget) ran out (LLL105)
	FaultType                      // Op (or the builtin Name) does not take A (and B) (LLL102)
)

// Failure is the failure of a span a second backend found, which
// Validator.SpanViolation turns into the violation the interpreter gives,
// worded by the same code.
type Failure struct {
	Why Why
	// Rule is the index of the failing rule in the validator's rules; for
	// WhyBudget, -1 when the budget ran out in the guard.
	Rule int
	// Member is the index of the member in the span's Members
	// (WhyUnknown).
	Member int
	// Pos is the position of the expression whose step exceeded the
	// budget, and Budget the budget (WhyBudget); or the position of the
	// expression that failed (WhyFault), and for FaultBytes Budget the
	// byte budget.
	Pos    string
	Budget int64
	// Fault is how the expression at Pos failed, Op its operator (Name
	// the builtin's, for a call) and A and B its operands (WhyFault).
	Fault Fault
	Op    ir.Op
	Name  string
	A, B  ir.Value
	// Host is the error of the host call Name at Pos (WhyHost), as the
	// run's Env.Host returned it.
	Host error
}

// err returns the error of the run f describes (WhyBudget, WhyFault), as
// the interpreter words it, or nil.
func (f Failure) err() error {
	switch {
	case f.Why == WhyBudget:
		return budgetError(f.Pos, f.Budget)
	case f.Why == WhyHost && f.Host != nil:
		return wrapHost(f.Host, f.Pos, f.Name)
	case f.Why == WhyFault && f.Fault == FaultOverflow:
		return overflowError(f.Op, f.A, f.B, f.Pos)
	case f.Why == WhyFault && f.Fault == FaultDivZero:
		return divisionByZero(f.Pos)
	case f.Why == WhyFault && f.Fault == FaultOrder:
		return orderError(f.A, f.B, f.Pos)
	case f.Why == WhyFault && f.Fault == FaultBytes:
		return bytesError(f.Pos, f.Budget)
	case f.Why == WhyFault && f.Fault == FaultType && f.Op == ir.OpCall:
		return builtinError(f.Name, f.A, f.Pos)
	case f.Why == WhyFault && f.Fault == FaultType:
		return operandsError(f.Op, f.A, f.B, f.Pos)
	}
	return nil
}

// Err returns the error of the run f describes (WhyBudget, WhyFault), as
// the interpreter words it, or nil: what Router.Route returns when a
// second backend's run of a router fails so (Rule and Member unused).
func (f Failure) Err() error { return f.err() }

// SpanViolation returns the violation of s that f describes, as
// CheckSpan words it. It fails when f does not fit the validator or the
// span (a rule or member out of range, a reason the rule cannot give).
func (v *Validator) SpanViolation(s *span.Span, f Failure) (*Violation, error) {
	if err := f.err(); err != nil && f.Rule == -1 && v.guard != nil {
		return v.cannotEvaluate(nil, err), nil
	}
	if f.Rule < 0 || f.Rule >= len(v.rules) {
		return nil, fmt.Errorf("eval: validator %s: failure of rule %d of %d", v.IR.Name, f.Rule, len(v.rules))
	}
	r := v.rules[f.Rule]
	bad := func() (*Violation, error) {
		return nil, fmt.Errorf("eval: validator %s: rule %q cannot fail with reason %d", v.IR.Name, r.ir.Source, f.Why)
	}
	field := r.ir.Kind == ir.RuleRequire || r.ir.Kind == ir.RuleAllow
	switch f.Why {
	case WhyRequired:
		if field {
			return v.required(r), nil
		}
	case WhyEmpty:
		if field && r.field.IsString() {
			return v.empty(r), nil
		}
	case WhyNotRFC3339:
		if field {
			return v.notRFC3339(r, s.WhenRaw), nil
		}
	case WhyNotOneOf:
		if field && r.in != nil && r.path != nil {
			if val, err := dataPath(s, r); err == nil && !val.IsNull() && !r.oneOf(val) {
				return v.notOneOf(r, show(val)), nil
			}
			return bad()
		}
		if field && r.in != nil {
			return v.notOneOfString(r, spanfield.String(s, r.field)), nil
		}
	case WhyFormat:
		val, err := dataPath(s, r)
		if r.path == nil && r.field.IsString() && r.field != spanfield.When {
			val, err = ir.StringValue(spanfield.String(s, r.field)), nil
		}
		if field && r.format != nil && err == nil && !val.IsNull() {
			if ok, reason := r.format.Match(val); !ok {
				return v.badFormat(r, val, reason), nil
			}
		}
	case WhyUnknown:
		if r.ir.Kind == ir.RuleClosed && f.Member >= 0 && f.Member < len(s.Members) {
			return v.unknown(r, s.Members[f.Member]), nil
		}
	case WhyCheck:
		if r.cond != nil {
			return v.checkFailed(r), nil
		}
	case WhyBudget, WhyFault, WhyHost:
		if err := f.err(); err != nil && (r.cond != nil || f.Fault == FaultBytes && field && r.path != nil) {
			return v.cannotEvaluate(r, err), nil
		}
	}
	return bad()
}

// dataPath returns the value of the dotted field of r (data.PATH) in s,
// as the rule reads it.
func dataPath(s *span.Span, r *rule) (ir.Value, error) {
	if r.field != spanfield.Data {
		return ir.Value{}, fmt.Errorf("eval: field %s is not below data", r.ir.Field)
	}
	d, _, err := SpanData(s)
	return Walk(d, r.path), err
}

// badFormat is the violation of the value val of the rule's field, which
// its format does not match for reason.
func (v *Validator) badFormat(r *rule, val ir.Value, reason string) *Violation {
	return v.violation(r.ir, r.ir.Field, fmt.Sprintf("field %q %s: %s", r.ir.Field, reason, clip(show(val))))
}

// budgetError is the error of a run whose step budget max ran out at the
// expression at pos.
func budgetError(pos string, max int64) error {
	return &Error{Code: diag.StepBudget, Pos: pos, Msg: fmt.Sprintf("evaluation exceeded its budget of %d steps", max)}
}

// overflowError is the error of a op b overflowing at pos.
func overflowError(op ir.Op, a, b ir.Value, pos string) error {
	return &Error{Code: diag.Arithmetic, Pos: pos, Msg: fmt.Sprintf("arithmetic overflow in %s %s %s", clip(a.String()), op, clip(b.String()))}
}

// divisionByZero is the error of a division by zero at pos.
func divisionByZero(pos string) error {
	return &Error{Code: diag.Arithmetic, Pos: pos, Msg: "division by zero"}
}

// orderError is the error of ordering a and b, of kinds without an order,
// at pos.
func orderError(a, b ir.Value, pos string) error {
	return &Error{Code: diag.RuntimeType, Pos: pos, Msg: fmt.Sprintf("cannot order %s %s and %s %s", a.Kind(), clip(a.String()), b.Kind(), clip(b.String()))}
}

// bytesError is the error of a run whose byte budget max ran out at the
// expression at pos.
func bytesError(pos string, max int64) error {
	return &Error{Code: diag.ByteBudget, Pos: pos, Msg: fmt.Sprintf("evaluation exceeded its budget of %d bytes of values", max)}
}

// operandsError is the error of an operator op that does not take values
// of the kinds of a and b, at pos.
func operandsError(op ir.Op, a, b ir.Value, pos string) error {
	return &Error{Code: diag.RuntimeType, Pos: pos, Msg: fmt.Sprintf("cannot %s %s and %s", op, a.Kind(), b.Kind())}
}

// builtinError is the error of the builtin name (lower, upper, len) of a
// value of a kind it does not take, at pos.
func builtinError(name string, v ir.Value, pos string) error {
	return &Error{Code: diag.RuntimeType, Pos: pos, Msg: fmt.Sprintf("%s of a %s", name, v.Kind())}
}

// The wording of violations, for both backends.

func (v *Validator) required(r *rule) *Violation {
	return v.violation(r.ir, r.ir.Field, fmt.Sprintf("field %q is required", r.ir.Field))
}

func (v *Validator) empty(r *rule) *Violation {
	return v.violation(r.ir, r.ir.Field, fmt.Sprintf("field %q is empty", r.ir.Field))
}

func (v *Validator) notRFC3339(r *rule, raw string) *Violation {
	return v.violation(r.ir, r.ir.Field, fmt.Sprintf("field %q is not RFC 3339: %q", r.ir.Field, clip(raw)))
}

// notOneOf is the violation of a value the rule does not allow, val as
// shown.
func (v *Validator) notOneOf(r *rule, val string) *Violation {
	return v.violation(r.ir, r.ir.Field, fmt.Sprintf("field %q is not one of %s: %s", r.ir.Field, r.inShow, clip(val)))
}

// notOneOfString is notOneOf of a string.
func (v *Validator) notOneOfString(r *rule, str string) *Violation {
	return v.notOneOf(r, fmt.Sprintf("%q", str))
}

func (v *Validator) unknown(r *rule, member string) *Violation {
	return v.violation(r.ir, member, fmt.Sprintf("unknown field %q (allowed: %s)", clip(member), strings.Join(r.allowL, ", ")))
}

func (v *Validator) checkFailed(r *rule) *Violation {
	d := r.ir.Message
	if d == "" {
		d = "check failed: " + strings.TrimSpace(strings.TrimPrefix(r.ir.Source, "check"))
	}
	return v.violation(r.ir, "", d)
}

// cannotEvaluate is the violation of a rule (nil: the guard) whose
// evaluation failed with err.
func (v *Validator) cannotEvaluate(r *rule, err error) *Violation {
	if r == nil {
		return &Violation{Validator: v.IR.Name, Rule: "when", Detail: "cannot evaluate: " + err.Error(), Pos: v.IR.Pos, Action: v.IR.OnFail}
	}
	field := ""
	if r.ir.Kind == ir.RuleRequire || r.ir.Kind == ir.RuleAllow {
		field = r.ir.Field
	}
	return v.violation(r.ir, field, "cannot evaluate: "+err.Error())
}

// clip shortens a text shown in a violation.
func clip(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

// EventFailure returns what CheckEventWith returns for a run on an event
// that a second backend found failing so: the guard's error (f.Rule -1:
// WhyBudget, WhyFault, WhyHost), or the violation of the check rule
// f.Rule (WhyCheck, or the rule's error as cannot evaluate). It fails
// when f does not fit the validator.
func (v *Validator) EventFailure(f Failure) (Result, error) {
	err := f.err()
	if f.Rule == -1 && v.guard != nil && err != nil {
		return Result{}, err
	}
	if f.Rule < 0 || f.Rule >= len(v.rules) || v.rules[f.Rule].cond == nil {
		return Result{}, fmt.Errorf("eval: validator %s: failure of rule %d of %d", v.IR.Name, f.Rule, len(v.rules))
	}
	r := v.rules[f.Rule]
	switch {
	case f.Why == WhyCheck:
		return Result{Applied: true, Violation: v.checkFailed(r)}, nil
	case err != nil:
		return Result{Applied: true, Violation: v.cannotEvaluate(r, err)}, nil
	}
	return Result{}, fmt.Errorf("eval: validator %s: rule %q cannot fail with reason %d", v.IR.Name, r.ir.Source, f.Why)
}
