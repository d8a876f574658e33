package events

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Piece is what one chunk of a running attempt carries: answer text, or a typed record
// (a thought, a tool call or result, a turn's usage, an error) with its kind
// (taskloom.v1.ChunkKind) and structured payload. The hub does not look inside: it
// replays and fans pieces out in the order the worker sent them.
type Piece struct {
	Kind int32
	Text string
	Data *structpb.Struct
}

// size is what a piece counts against the replay budget.
func (p Piece) size() int {
	if p.Data == nil {
		return len(p.Text)
	}
	return len(p.Text) + proto.Size(p.Data)
}

func (ev Event) piece() Piece {
	return Piece{Kind: ev.ChunkKind, Text: ev.Chunk, Data: ev.ChunkData}
}
