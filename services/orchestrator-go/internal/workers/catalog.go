// Package workers keeps the connected agent workers (their credits, leases and
// outbound messages) and the agent catalog: every agent any worker has registered.
package workers

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/task"
)

// AgentStore is where a persistent catalog keeps its agents (store.Store is one).
type AgentStore interface {
	PutAgents(ctx context.Context, agents ...task.AgentInfo) error
	Agents(ctx context.Context) ([]task.AgentInfo, error)
}

// persistTimeout bounds one catalog write (it runs during a worker's registration).
const persistTimeout = 5 * time.Second

// Catalog is the union of agents ever registered. Agents stay after their workers
// leave, so tasks for a known agent can queue while no worker is connected. A
// catalog made by LoadCatalog also survives restarts: it writes a new or changed
// agent to its store before the agent becomes visible.
type Catalog struct {
	mu     sync.RWMutex
	agents map[string]task.AgentInfo
	limit  int // most agents Register accepts; 0: DefaultMaxAgents

	persistMu sync.Mutex // orders writes to the store; held across one write
	store     AgentStore
	saved     map[string]task.AgentInfo // what the store holds (guarded by persistMu)
	log       *slog.Logger
}

// NewCatalog returns an empty in-memory catalog.
func NewCatalog() *Catalog { return &Catalog{agents: map[string]task.AgentInfo{}} }

// LoadCatalog returns the catalog stored in s; later registrations are written
// back to s. log may be nil.
func LoadCatalog(ctx context.Context, s AgentStore, log *slog.Logger) (*Catalog, error) {
	stored, err := s.Agents(ctx)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Catalog{agents: make(map[string]task.AgentInfo, len(stored)), store: s, saved: make(map[string]task.AgentInfo, len(stored)), log: log}
	for _, sa := range stored {
		a := sa
		c.agents[a.Name] = a
		c.saved[a.Name] = a
	}
	return c, nil
}

// DefaultMaxAgents bounds the catalog: agent names are a metric label and live
// forever, so a worker (a trusted peer, but possibly buggy) cannot grow them
// without limit.
const DefaultMaxAgents = 10_000

// ErrCatalogFull refuses a registration that would take the catalog past its limit.
type ErrCatalogFull struct {
	Limit int // the most agents the catalog holds
	New   int // agents the registration would add
}

func (e *ErrCatalogFull) Error() string {
	return fmt.Sprintf("the agent catalog is full (limit %d agents); a registration adding %d new agents was refused", e.Limit, e.New)
}

// Add records agents without checking the limit (trusted callers and tests);
// see Register.
func (c *Catalog) Add(agents ...task.AgentInfo) {
	_ = c.add(agents, 0)
}

// Register records the agents a worker registers; a later registration of the
// same name replaces its description. It fails with *ErrCatalogFull, recording
// nothing, when the new names would take the catalog past its limit
// (DefaultMaxAgents unless SetLimit changed it). A persistent catalog first writes
// the agents that are new or changed (nothing when a worker re-registers what is
// known); if that write fails the agents are still served from memory and the
// write is retried on the next registration.
func (c *Catalog) Register(agents ...task.AgentInfo) error {
	c.mu.RLock()
	limit := c.limit
	c.mu.RUnlock()
	if limit <= 0 {
		limit = DefaultMaxAgents
	}
	return c.add(agents, limit)
}

// SetLimit sets the most agents Register accepts (0: DefaultMaxAgents).
func (c *Catalog) SetLimit(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit = n
}

// add records agents; limit > 0 refuses them if the catalog would exceed it.
func (c *Catalog) add(agents []task.AgentInfo, limit int) error {
	if c.store != nil {
		c.persistMu.Lock()
		defer c.persistMu.Unlock()
	}
	// persistMu (when there is a store) orders registrations, so the count checked
	// here holds until the agents are added below.
	if limit > 0 {
		if n := c.newNames(agents); n > 0 && c.Len()+n > limit {
			return &ErrCatalogFull{Limit: limit, New: n}
		}
	}
	if c.store != nil {
		c.persist(agents)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 { // re-checked: without a store, registrations are not ordered
		if n := c.newNamesLocked(agents); n > 0 && len(c.agents)+n > limit {
			return &ErrCatalogFull{Limit: limit, New: n}
		}
	}
	for _, a := range agents {
		a.Tools = slices.Clone(a.Tools)
		c.agents[a.Name] = a
	}
	return nil
}

// newNames counts the distinct names among agents the catalog does not hold.
func (c *Catalog) newNames(agents []task.AgentInfo) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.newNamesLocked(agents)
}

func (c *Catalog) newNamesLocked(agents []task.AgentInfo) int {
	seen := map[string]bool{}
	for _, a := range agents {
		if _, ok := c.agents[a.Name]; !ok && !seen[a.Name] {
			seen[a.Name] = true
		}
	}
	return len(seen)
}

// Len is the number of agents in the catalog.
func (c *Catalog) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.agents)
}

// persist writes the agents the store lacks or holds differently. persistMu is held.
func (c *Catalog) persist(agents []task.AgentInfo) {
	changed := map[string]task.AgentInfo{} // the last of duplicate names wins, as in memory
	for _, a := range agents {
		if old, ok := c.saved[a.Name]; ok && old.Equal(a) {
			delete(changed, a.Name)
			continue
		}
		a.Tools = slices.Clone(a.Tools)
		changed[a.Name] = a
	}
	if len(changed) == 0 {
		return
	}
	rows := make([]task.AgentInfo, 0, len(changed))
	for _, a := range changed {
		rows = append(rows, task.AgentInfo(a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), persistTimeout)
	defer cancel()
	if err := c.store.PutAgents(ctx, rows...); err != nil {
		c.log.Error("persist agent catalog; the agents are served from memory until a later registration stores them", "agents", len(rows), "err", err)
		return
	}
	for name, a := range changed {
		c.saved[name] = a
	}
}

// Has reports whether any worker ever registered the agent.
func (c *Catalog) Has(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.agents[name]
	return ok
}

// Provider returns the LLM provider the agent was registered with ("" if unknown).
func (c *Catalog) Provider(name string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.agents[name].Provider
}

// List returns the agents sorted by name.
func (c *Catalog) List() []task.AgentInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]task.AgentInfo, 0, len(c.agents))
	for _, a := range c.agents {
		a.Tools = slices.Clone(a.Tools)
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b task.AgentInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
