package limits

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/errs"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// requests are the messages the orchestrator's services receive.
func requests() []protoreflect.MessageDescriptor {
	var out []protoreflect.MessageDescriptor
	for _, file := range []protoreflect.FileDescriptor{pb.File_taskloom_v1_orchestrator_proto, pb.File_taskloom_v1_worker_hub_proto} {
		for i := range file.Services().Len() {
			methods := file.Services().Get(i).Methods()
			for j := range methods.Len() {
				out = append(out, methods.Get(j).Input())
			}
		}
	}
	return out
}

// bound is one edge of one declared limit: a way to set the field at the edge
// (accepted) and one past it (refused).
type bound struct {
	what      string
	at, past  func(m protoreflect.Message, fd protoreflect.FieldDescriptor)
	pastField string // the field the error names, relative to the field's path
}

func str(n uint32) string { return strings.Repeat("x", int(n)) }

func setString(n uint32) func(protoreflect.Message, protoreflect.FieldDescriptor) {
	return func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
		if fd.IsList() {
			l := m.Mutable(fd).List()
			l.Append(protoreflect.ValueOfString(str(n)))
			return
		}
		m.Set(fd, protoreflect.ValueOfString(str(n)))
	}
}

func setItems(n uint32) func(protoreflect.Message, protoreflect.FieldDescriptor) {
	return func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for i := range n {
				mp.Set(protoreflect.ValueOfString(str(i+1)).MapKey(), protoreflect.ValueOfString("v"))
			}
		case fd.Kind() == protoreflect.MessageKind:
			l := m.Mutable(fd).List()
			for range n {
				l.Append(protoreflect.ValueOfMessage(valid(fd.Message())))
			}
		default:
			l := m.Mutable(fd).List()
			for range n {
				l.Append(protoreflect.ValueOfString("x"))
			}
		}
	}
}

func setMapEntry(key, value string) func(protoreflect.Message, protoreflect.FieldDescriptor) {
	return func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
		m.Mutable(fd).Map().Set(protoreflect.ValueOfString(key).MapKey(), protoreflect.ValueOfString(value))
	}
}

func setInt(v int64) func(protoreflect.Message, protoreflect.FieldDescriptor) {
	return func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
		if fd.Kind() == protoreflect.Int32Kind {
			m.Set(fd, protoreflect.ValueOfInt32(int32(v)))
			return
		}
		m.Set(fd, protoreflect.ValueOfInt64(v))
	}
}

func setMessage(msg proto.Message) func(protoreflect.Message, protoreflect.FieldDescriptor) {
	return func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
		m.Set(fd, protoreflect.ValueOfMessage(msg.ProtoReflect()))
	}
}

// valueOfSize is a string Value whose encoding is exactly n bytes.
func valueOfSize(n uint64) *structpb.Value {
	for s := n; s > 0; s-- {
		if v := structpb.NewStringValue(strings.Repeat("x", int(s))); uint64(proto.Size(v)) == n {
			return v
		}
	}
	panic("no size")
}

// boundsOf turns a field's declared limits into the edges to test.
func boundsOf(fd protoreflect.FieldDescriptor, l *pb.FieldLimits) []bound {
	var out []bound
	elem := ""
	if fd.IsList() && fd.Kind() == protoreflect.StringKind {
		elem = "[0]"
	}
	if l.GetMaxLen() > 0 {
		out = append(out, bound{"max_len", setString(l.GetMaxLen()), setString(l.GetMaxLen() + 1), elem})
	}
	if l.GetMinLen() > 0 {
		out = append(out, bound{"min_len", setString(l.GetMinLen()), setString(l.GetMinLen() - 1), elem})
	}
	if l.GetMaxItems() > 0 {
		out = append(out, bound{"max_items", setItems(l.GetMaxItems()), setItems(l.GetMaxItems() + 1), ""})
	}
	if l.GetMinItems() > 0 {
		out = append(out, bound{"min_items", setItems(l.GetMinItems()), setItems(l.GetMinItems() - 1), ""})
	}
	if l.GetMinKeyLen() > 0 {
		out = append(out, bound{"min_key_len", setMapEntry(str(l.GetMinKeyLen()), "v"), setMapEntry(str(l.GetMinKeyLen()-1), "v"), ""})
	}
	if l.GetMaxKeyLen() > 0 {
		out = append(out, bound{"max_key_len", setMapEntry(str(l.GetMaxKeyLen()), "v"), setMapEntry(str(l.GetMaxKeyLen()+1), "v"), ""})
	}
	if l.GetMaxValueLen() > 0 {
		out = append(out, bound{"max_value_len", setMapEntry("k", str(l.GetMaxValueLen())), setMapEntry("k", str(l.GetMaxValueLen()+1)), ""})
	}
	if l.Max != nil {
		out = append(out, bound{"max", setInt(l.GetMax()), setInt(l.GetMax() + 1), ""})
	}
	if l.Min != nil {
		out = append(out, bound{"min", setInt(l.GetMin()), setInt(l.GetMin() - 1), ""})
	}
	if l.GetMaxSeconds() > 0 {
		s := int64(l.GetMaxSeconds())
		out = append(out,
			bound{"max_seconds", setMessage(&durationpb.Duration{Seconds: s}), setMessage(&durationpb.Duration{Seconds: s, Nanos: 1}), ""},
			bound{"not negative", setMessage(&durationpb.Duration{}), setMessage(&durationpb.Duration{Seconds: -1}), ""})
	}
	if l.GetMaxBytes() > 0 {
		out = append(out, bound{"max_bytes", setMessage(valueOfSize(l.GetMaxBytes())), setMessage(valueOfSize(l.GetMaxBytes() + 1)), ""})
	}
	return out
}

// valid is the smallest message of type md that passes Check: every required
// field at its lower bound, recursively.
func valid(md protoreflect.MessageDescriptor) protoreflect.Message {
	m := dynamicpb.NewMessage(md)
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		l := Of(fd)
		switch {
		case l == nil:
		case l.GetMinItems() > 0:
			setItems(l.GetMinItems())(m, fd)
		case l.GetMinLen() > 0 && !fd.IsList():
			setString(l.GetMinLen())(m, fd)
		case l.Min != nil && l.GetMin() > 0 && !fd.HasPresence():
			setInt(l.GetMin())(m, fd)
		}
	}
	return m
}

// target is a field with limits and the path from a request to it.
type target struct {
	path  []protoreflect.FieldDescriptor
	field string
}

// targets lists every field with limits reachable from md through singular and
// repeated message fields (the first element of a list).
func targets(md protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor, prefix string, seen map[protoreflect.FullName]bool) []target {
	if seen[md.FullName()] {
		return nil
	}
	seen[md.FullName()] = true
	defer delete(seen, md.FullName())
	var out []target
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		p := append(append([]protoreflect.FieldDescriptor(nil), path...), fd)
		if Of(fd) != nil {
			out = append(out, target{p, name})
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
			if fd.IsList() {
				name += "[0]"
			}
			out = append(out, targets(fd.Message(), p, name+".", seen)...)
		}
	}
	return out
}

// within returns the message holding the target's field in a valid request,
// creating the messages on the way.
func within(root protoreflect.Message, path []protoreflect.FieldDescriptor) protoreflect.Message {
	m := root
	for _, fd := range path[:len(path)-1] {
		if fd.IsList() {
			l := m.Mutable(fd).List()
			if l.Len() == 0 {
				l.Append(protoreflect.ValueOfMessage(valid(fd.Message())))
			}
			m = l.Get(0).Message()
			continue
		}
		if !m.Has(fd) {
			m.Set(fd, protoreflect.ValueOfMessage(valid(fd.Message())))
		}
		m = m.Mutable(fd).Message()
	}
	return m
}

// The validation Check applies is the table the contracts declare: for every
// limit of every field a service receives, a value at the limit is accepted and
// one past it is refused as INVALID_ARGUMENT naming that field.
func TestCheckAppliesEveryDeclaredLimitAtItsEdge(t *testing.T) {
	tested := 0
	for _, md := range requests() {
		if err := Check(valid(md).Interface()); err != nil {
			t.Fatalf("the smallest valid %s is refused: %v", md.FullName(), err)
		}
		for _, tg := range targets(md, nil, "", map[protoreflect.FullName]bool{}) {
			fd := tg.path[len(tg.path)-1]
			l := Of(fd)
			for _, b := range boundsOf(fd, l) {
				at := valid(md)
				holderAt := within(at, tg.path)
				holderAt.Clear(fd)
				b.at(holderAt, fd)
				if err := Check(at.Interface()); err != nil {
					t.Errorf("%s %s at its %s: refused: %v", md.Name(), tg.field, b.what, err)
				}
				past := valid(md)
				holder := within(past, tg.path)
				holder.Clear(fd)
				b.past(holder, fd)
				e, ok := errs.As(Check(past.Interface()))
				if want := tg.field + b.pastField; !ok || e.Kind != errs.KindInvalidArgument || e.Field != want {
					t.Errorf("%s %s past its %s: %v, want INVALID_ARGUMENT naming %s", md.Name(), tg.field, b.what, e, want)
				}
				tested++
			}
		}
	}
	if tested < 40 {
		t.Fatalf("only %d edges tested: the table was not walked", tested)
	}
}

// The queue keeps one level per priority, so its range is a Go constant; it must
// be the range the contracts declare.
func TestThePriorityRangeOfTheQueueIsTheContracts(t *testing.T) {
	for _, l := range []*pb.FieldLimits{Field(&pb.TaskSpec{}, "priority"), Field(&pb.Step{}, "priority")} {
		if l.GetMin() != task.MinPriority || l.GetMax() != task.MaxPriority || l.Default == nil ||
			l.GetDefault() < l.GetMin() || l.GetDefault() > l.GetMax() {
			t.Fatalf("declared priority %v; the queue has %d..%d", l, task.MinPriority, task.MaxPriority)
		}
	}
}

func TestTheTraceparentLabelDoesNotCountTowardsTheLabelBound(t *testing.T) {
	most := Field(&pb.TaskSpec{}, "labels").GetMaxItems()
	labels := map[string]string{task.LabelTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	for i := range most {
		labels[str(i+1)] = "v"
	}
	if err := Check(&pb.SubmitTaskRequest{Task: &pb.TaskSpec{Agent: "a", Labels: labels}}); err != nil {
		t.Fatalf("%d labels and the traceparent: %v", most, err)
	}
}
