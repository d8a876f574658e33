// Package limits reads the field limits the contracts declare once, as options in
// proto/taskloom/v1 (limits.proto), from the generated descriptors, and checks
// messages against them. Nothing here states a limit itself.
package limits

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// Of returns the limits declared on a field, or nil.
func Of(fd protoreflect.FieldDescriptor) *pb.FieldLimits {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, pb.E_Limits) {
		return nil
	}
	return proto.GetExtension(opts, pb.E_Limits).(*pb.FieldLimits)
}

// Field returns the limits of the named field of m's message; it panics when the
// field has none (a misspelt name is a programming error).
func Field(m proto.Message, name string) *pb.FieldLimits {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		panic(fmt.Sprintf("limits: %s has no field %q", m.ProtoReflect().Descriptor().FullName(), name))
	}
	l := Of(fd)
	if l == nil {
		panic(fmt.Sprintf("limits: %s declares no limits", fd.FullName()))
	}
	return l
}

// MaxRequestBytes is the largest request any of the services accepts
// (taskloom.v1.service_limits).
func MaxRequestBytes(services ...protoreflect.ServiceDescriptor) int {
	n := 0
	for _, sd := range services {
		opts, ok := sd.Options().(*descriptorpb.ServiceOptions)
		if ok && opts != nil && proto.HasExtension(opts, pb.E_ServiceLimits) {
			l := proto.GetExtension(opts, pb.E_ServiceLimits).(*pb.ServiceLimits)
			n = max(n, int(l.GetMaxRequestBytes()))
		}
	}
	return n
}

// Check validates m against the limits of its fields, and of the fields of the
// messages it holds, in declaration order. The first violation is returned as an
// INVALID_ARGUMENT *errs.Error naming the field by its path in m
// ("task.retry.max_attempts", "workflow.steps[2].timeout"). Messages without any
// limits cost one map lookup.
func Check(m proto.Message) error {
	if m == nil {
		return nil
	}
	return planOf(m.ProtoReflect().Descriptor()).check(m.ProtoReflect(), "")
}

// plan is what Check looks at in one message type: the fields with limits and the
// message fields that hold some.
type plan struct {
	fields []planField
}

type planField struct {
	fd     protoreflect.FieldDescriptor
	limits *pb.FieldLimits // nil: only recurse
	inner  *plan           // the plan of a message field that holds limits, else nil
}

var plans sync.Map // protoreflect.FullName -> *plan

func planOf(md protoreflect.MessageDescriptor) *plan {
	if p, ok := plans.Load(md.FullName()); ok {
		return p.(*plan)
	}
	p := buildPlan(md, map[protoreflect.FullName]*plan{})
	plans.Store(md.FullName(), p)
	return p
}

// buildPlan follows message fields (except the well-known types, checked as
// values) to find every limit; seen breaks recursive message types.
func buildPlan(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*plan) *plan {
	if p, ok := seen[md.FullName()]; ok {
		return p
	}
	p := &plan{}
	seen[md.FullName()] = p
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		pf := planField{fd: fd, limits: Of(fd)}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
			if inner := buildPlan(fd.Message(), seen); len(inner.fields) > 0 {
				pf.inner = inner
			}
		}
		if pf.limits != nil || pf.inner != nil {
			p.fields = append(p.fields, pf)
		}
	}
	return p
}

func (p *plan) check(m protoreflect.Message, prefix string) error {
	for _, pf := range p.fields {
		fd := pf.fd
		name := prefix + string(fd.Name())
		if pf.limits != nil {
			if err := checkField(m, fd, pf.limits, name); err != nil {
				return err
			}
		}
		if pf.inner == nil || !m.Has(fd) {
			continue
		}
		if fd.IsList() {
			list := m.Get(fd).List()
			for i := range list.Len() {
				if err := pf.inner.check(list.Get(i).Message(), fmt.Sprintf("%s[%d].", name, i)); err != nil {
					return err
				}
			}
			continue
		}
		if err := pf.inner.check(m.Get(fd).Message(), name+"."); err != nil {
			return err
		}
	}
	return nil
}

func checkField(m protoreflect.Message, fd protoreflect.FieldDescriptor, l *pb.FieldLimits, name string) error {
	switch {
	case fd.IsMap():
		return checkMap(m.Get(fd).Map(), l, name)
	case fd.IsList():
		list := m.Get(fd).List()
		if err := checkCount(list.Len(), l, name); err != nil {
			return err
		}
		if fd.Kind() == protoreflect.StringKind {
			for i := range list.Len() {
				if err := checkLen(list.Get(i).String(), l, fmt.Sprintf("%s[%d]", name, i)); err != nil {
					return err
				}
			}
		}
		return nil
	case fd.Kind() == protoreflect.StringKind:
		return checkLen(m.Get(fd).String(), l, name)
	case fd.Kind() == protoreflect.Int32Kind || fd.Kind() == protoreflect.Int64Kind:
		if fd.HasPresence() && !m.Has(fd) {
			return nil // absent: the declared default
		}
		return checkRange(m.Get(fd).Int(), l, name)
	case fd.Kind() == protoreflect.MessageKind && m.Has(fd):
		switch v := m.Get(fd).Message().Interface().(type) {
		case *durationpb.Duration:
			return checkDuration(v, l, name)
		case *structpb.Value:
			if n := proto.Size(v); l.GetMaxBytes() > 0 && uint64(n) > l.GetMaxBytes() {
				return errs.InvalidArgument(name, "%s is %d bytes when encoded; at most %d are accepted", name, n, l.GetMaxBytes())
			}
		}
	}
	return nil
}

// LabelsUncounted is the label that never counts towards a map's max_items: the
// trace context the gateway (or the call's metadata) adds to every task.
const LabelsUncounted = task.LabelTraceparent

func checkMap(mv protoreflect.Map, l *pb.FieldLimits, name string) error {
	n := mv.Len()
	if mv.Has(protoreflect.ValueOfString(LabelsUncounted).MapKey()) {
		n--
	}
	if err := checkCount(n, l, name); err != nil {
		return err
	}
	var err error
	mv.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		key := k.String()
		switch {
		case uint32(len(key)) < l.GetMinKeyLen():
			err = errs.InvalidArgument(name, "%s: a key must be %s bytes; got one of %d", name, span(l.GetMinKeyLen(), l.GetMaxKeyLen()), len(key))
		case l.GetMaxKeyLen() > 0 && uint32(len(key)) > l.GetMaxKeyLen():
			err = errs.InvalidArgument(name, "%s: a key must be %s bytes; got one of %d", name, span(l.GetMinKeyLen(), l.GetMaxKeyLen()), len(key))
		case l.GetMaxValueLen() > 0 && uint32(len(v.String())) > l.GetMaxValueLen():
			err = errs.InvalidArgument(name, "%s: the value of %q must be at most %d bytes; got %d", name, errs.Clip(key), l.GetMaxValueLen(), len(v.String()))
		}
		return err == nil
	})
	return err
}

func checkCount(n int, l *pb.FieldLimits, name string) error {
	if uint32(n) < l.GetMinItems() || (l.GetMaxItems() > 0 && uint32(n) > l.GetMaxItems()) {
		if n == 0 {
			return errs.InvalidArgument(name, "%s is required: %s entries", name, span(l.GetMinItems(), l.GetMaxItems()))
		}
		return errs.InvalidArgument(name, "%s must have %s entries; got %d", name, span(l.GetMinItems(), l.GetMaxItems()), n)
	}
	return nil
}

func checkLen(s string, l *pb.FieldLimits, name string) error {
	n := uint32(len(s))
	if n >= l.GetMinLen() && (l.GetMaxLen() == 0 || n <= l.GetMaxLen()) {
		return nil
	}
	if n == 0 {
		return errs.InvalidArgument(name, "%s is required", name)
	}
	return errs.InvalidArgument(name, "%s must be %s bytes; got %d", name, span(l.GetMinLen(), l.GetMaxLen()), n)
}

func checkRange(v int64, l *pb.FieldLimits, name string) error {
	if (l.Min == nil || v >= l.GetMin()) && (l.Max == nil || v <= l.GetMax()) {
		return nil
	}
	var want string
	switch {
	case (l.Min != nil) && (l.Max != nil):
		want = fmt.Sprintf("between %d and %d", l.GetMin(), l.GetMax())
	case (l.Min != nil):
		want = fmt.Sprintf("at least %d", l.GetMin())
	default:
		want = fmt.Sprintf("at most %d", l.GetMax())
	}
	if l.Default != nil {
		want += fmt.Sprintf(" (absent: %d)", l.GetDefault())
	}
	return errs.InvalidArgument(name, "%s must be %s; got %d", name, want, v)
}

func checkDuration(d *durationpb.Duration, l *pb.FieldLimits, name string) error {
	over := l.GetMaxSeconds() > 0 && (d.GetSeconds() > int64(l.GetMaxSeconds()) || (d.GetSeconds() == int64(l.GetMaxSeconds()) && d.GetNanos() > 0))
	if d.GetSeconds() < 0 || d.GetNanos() < 0 || over {
		return errs.InvalidArgument(name, "%s must be between 0 and %d seconds (0 or absent: the default); got %s",
			name, l.GetMaxSeconds(), secondsText(d))
	}
	if err := d.CheckValid(); err != nil {
		return errs.InvalidArgument(name, "%s is not a valid duration: its nanos must be below one second", name)
	}
	return nil
}

// secondsText prints a duration's seconds without converting it (it may exceed
// what time.Duration holds).
func secondsText(d *durationpb.Duration) string {
	if d.GetNanos() == 0 {
		return fmt.Sprintf("%ds", d.GetSeconds())
	}
	if d.GetSeconds() >= -9e9 && d.GetSeconds() <= 9e9 {
		return (time.Duration(d.GetSeconds())*time.Second + time.Duration(d.GetNanos())).String()
	}
	return fmt.Sprintf("%ds", d.GetSeconds())
}

// span says "1 to 128", "at most 128" or "at least 1".
func span(lo, hi uint32) string {
	switch {
	case hi == 0:
		return fmt.Sprintf("at least %d", lo)
	case lo == 0:
		return fmt.Sprintf("at most %d", hi)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}
