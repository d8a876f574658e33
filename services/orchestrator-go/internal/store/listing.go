package store

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// MaxListScan bounds the index entries one List call examines. A filter that
// matches few tasks would otherwise walk the whole history: past the bound List
// returns the (possibly short, even empty) page found so far with a cursor that
// goes on from there. A variable so tests can lower it.
var MaxListScan = 10_000

// List cursors are positions, not tasks: "<created-at ns, 16 hex digits>:<id>", the
// created index key of the last entry the previous page examined. A page goes on
// strictly before it, so a cursor stays valid when its task is pruned. (A bare
// task id, the cursor of earlier versions, is still accepted while the task exists.)

// createdMember is a task's position in the created index, in cursor form (also the
// member of Redis's created sorted sets).
func createdMember(t *task.Task) string {
	return positionCursor(uint64(unixNano(t.CreatedAt)), t.ID)
}

func positionCursor(ns uint64, id string) string {
	return fmt.Sprintf("%016x:%s", ns, id)
}

// parseCursor splits a position cursor; ok is false for anything else.
func parseCursor(c string) (ns uint64, id string, ok bool) {
	if len(c) < 18 || c[16] != ':' {
		return 0, "", false
	}
	ns, err := strconv.ParseUint(c[:16], 16, 64)
	if err != nil {
		return 0, "", false
	}
	return ns, c[17:], true
}

// boltCursorKey turns a position cursor into bbolt's created key (8-byte ns + id).
func boltCursorKey(ns uint64, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, ns)
	return append(k, id...)
}

// cursorOfKey turns bbolt's created key back into a cursor.
func cursorOfKey(k []byte) string {
	return positionCursor(binary.BigEndian.Uint64(k[:8]), string(k[8:]))
}

// indexValue is what the created indexes of the bolt store hold for a task: its
// status and agent, so that filters skip non-matching tasks without decoding them.
// They are rewritten with every Put of the task (its key never changes).
func indexValue(t *task.Task) []byte {
	v := make([]byte, 0, 2+len(t.Agent))
	v = binary.AppendUvarint(v, uint64(t.Status))
	return append(v, t.Agent...)
}

// indexMayMatch reports whether an index value may match f (status and agent; the
// tenant is the index's). An empty value (records written before index values
// existed) may match anything.
func indexMayMatch(v []byte, f Filter) bool {
	if len(v) == 0 || (f.Status == task.StatusUnspecified && f.Agent == "") {
		return true
	}
	st, n := binary.Uvarint(v)
	if n <= 0 {
		return true
	}
	return (f.Status == task.StatusUnspecified || task.Status(st) == f.Status) &&
		(f.Agent == "" || string(v[n:]) == f.Agent)
}
