package events

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestTypedChunksReplayAndReachWatchersInOrderWithTheirPayload(t *testing.T) {
	h := newHub(Options{SubscriberBuffer: 8, ReplayChunks: 10, ReplayBytes: 1 << 20, FinishedTasks: 4})
	call, err := structpb.NewStruct(map[string]any{"id": "c1", "name": "calculator", "arguments": `{"expression":"1+1"}`})
	if err != nil {
		t.Fatal(err)
	}
	const text, toolCall = 1, 3 // taskloom.v1.CHUNK_KIND_TEXT, CHUNK_KIND_TOOL_CALL
	h.ChunkPiece("t", 1, 0, Piece{Kind: text, Text: "let me add. "}, t0)
	sub := h.Subscribe(running("t"), nil, t0) // status + the replayed text
	defer sub.Close()
	h.ChunkPiece("t", 1, 1, Piece{Kind: toolCall, Data: call}, t0)

	var chunks []Event
	for len(chunks) < 2 {
		ev, err := next(t, sub)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if ev.Kind == KindChunk {
			chunks = append(chunks, ev)
		}
	}
	if chunks[0].Chunk != "let me add. " || chunks[0].ChunkKind != text || chunks[0].ChunkData != nil {
		t.Fatalf("replayed chunk = %+v", chunks[0])
	}
	if chunks[1].ChunkKind != toolCall || !proto.Equal(chunks[1].ChunkData, call) || chunks[1].Seq != 1 {
		t.Fatalf("live chunk = %+v", chunks[1])
	}
}
