package api

// Every field of a task and a workflow goes through every mapper of this package:
// a field added to the proto or to the domain types and not mapped fails here (see
// docs/adding-a-task-field.md). The store codec has its own test of the same kind
// (store.TestFullTaskSetsEveryField with TestStoreRoundTripsEveryField).

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/taskloom/taskloom/services/orchestrator-go/gen/taskloom/v1"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
	"github.com/taskloom/taskloom/services/orchestrator-go/internal/workflow"
)

// fill sets every field of m, recursively, to a valid value that is not its zero.
func fill(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			m.Mutable(fd).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("v"))
		case fd.IsList():
			l := m.Mutable(fd).List()
			if fd.Kind() == protoreflect.MessageKind {
				e := l.NewElement()
				fillMessage(e.Message())
				l.Append(e)
			} else {
				l.Append(scalar(fd))
			}
		case fd.Kind() == protoreflect.MessageKind:
			v := m.NewField(fd)
			fillMessage(v.Message())
			m.Set(fd, v)
		default:
			m.Set(fd, scalar(fd))
		}
	}
}

// fillMessage fills m, giving the well-known types a valid value.
func fillMessage(m protoreflect.Message) {
	var wkt proto.Message
	switch m.Descriptor().FullName() {
	case "google.protobuf.Duration":
		wkt = durationpb.New(3 * time.Second)
	case "google.protobuf.Timestamp":
		wkt = timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	case "google.protobuf.Value":
		wkt = structpb.NewStringValue("v")
	default:
		fill(m)
		return
	}
	proto.Merge(m.Interface(), wkt)
}

func scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("s-" + string(fd.Name()))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(1)
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(2)
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(2)
	}
	panic("no value for " + fd.FullName())
}

// unset lists the fields of m (recursively, by path) that hold their zero value.
func unset(m protoreflect.Message, prefix string) []string {
	var out []string
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		if !m.Has(fd) {
			out = append(out, name)
			continue
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() &&
			fd.Message().FullName().Parent() == "taskloom.v1" {
			out = append(out, unset(m.Get(fd).Message(), name+".")...)
		}
	}
	return out
}

// zeroFields lists the fields of the struct v that hold their zero value.
func zeroFields(v any) []string {
	rv := reflect.Indirect(reflect.ValueOf(v))
	var out []string
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			out = append(out, rv.Type().Field(i).Name)
		}
	}
	return out
}

func TestEveryTaskSpecFieldReachesTheDomain(t *testing.T) {
	p := &pb.TaskSpec{}
	fill(p.ProtoReflect())
	spec, err := specFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	// WorkflowID and StepID are the engine's, never a client's.
	if got := zeroFields(spec); !slices.Equal(got, []string{"WorkflowID", "StepID"}) {
		t.Fatalf("task.Spec fields not mapped from TaskSpec: %v", got)
	}
}

// internalTaskFields are the fields of task.Task that the proto Task does not carry.
var internalTaskFields = []string{"InitialBackoff", "MaxBackoff", "NotBefore", "Fingerprint"}

func TestEveryTaskFieldReachesTheProto(t *testing.T) {
	tk := &task.Task{}
	fillStruct(reflect.ValueOf(tk).Elem())
	if z := zeroFields(tk); len(z) > 0 {
		t.Fatalf("fillStruct left %v", z)
	}
	p := taskToProto(tk)
	if got := unset(p.ProtoReflect(), ""); len(got) > 0 {
		t.Fatalf("taskloom.v1.Task fields no domain field maps to: %v", got)
	}
	// Each task.Task field is in the proto or listed as internal: a new field must
	// take a side.
	mapped := map[string]bool{}
	for _, name := range internalTaskFields {
		mapped[name] = true
	}
	protoNames := map[string]bool{}
	fields := p.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		protoNames[string(fields.Get(i).Name())] = true
	}
	rt := reflect.TypeOf(task.Task{})
	for i := range rt.NumField() {
		name := rt.Field(i).Name
		if !mapped[name] && !protoNames[snake(name)] && !protoNames[snake(name)+"_id"] && name != "Failure" && name != "Usage" {
			t.Errorf("task.Task.%s is neither in taskloom.v1.Task nor listed as internal", name)
		}
	}
}

func TestEveryWorkflowFieldRoundTripsThroughTheDomain(t *testing.T) {
	p := &pb.WorkflowSpec{}
	fill(p.ProtoReflect())
	spec, err := workflowSpecFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := zeroFields(spec); len(got) > 0 {
		t.Fatalf("workflow.Spec fields not mapped: %v", got)
	}
	back := workflowSpecToProto(spec)
	if !proto.Equal(p, back) {
		t.Fatalf("WorkflowSpec does not round-trip:\nsent     %v\nreturned %v", p, back)
	}
	wf := &workflow.Workflow{}
	fillStruct(reflect.ValueOf(wf).Elem())
	wf.Spec = spec
	out := workflowToProto(wf)
	if got := unset(out.ProtoReflect(), ""); len(got) > 0 {
		t.Fatalf("taskloom.v1.Workflow fields not mapped: %v", got)
	}
}

// fillStruct sets every field of a struct to a value that is not its zero,
// recursively; JSON fields get a JSON value.
func fillStruct(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillStruct(v.Field(i))
			}
		}
	case reflect.String:
		v.SetString("s")
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(2)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillStruct(v.Elem())
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		v.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf("v"))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 { // json.RawMessage
			v.SetBytes([]byte(`"j"`))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fillStruct(v.Index(0))
	case reflect.Array:
		v.Index(0).SetUint(1)
	}
}

// snake is "WorkflowID" -> "workflow_id", "CreatedAt" -> "created_at".
func snake(name string) string {
	out := []byte{}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			if i > 0 && (name[i-1] < 'A' || name[i-1] > 'Z') {
				out = append(out, '_')
			}
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}
