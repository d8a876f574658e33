// Package workers keeps the connected agent workers (their credits, leases and
// outbound messages) and the agent catalog: every agent any worker has registered.
package workers

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/taskloom/taskloom/services/orchestrator-go/internal/store"
)

// Agent describes an agent that workers can run.
type Agent struct {
	Name        string
	Description string
	Provider    string
	Model       string
	Tools       []string
}

func (a Agent) equal(b Agent) bool {
	return a.Name == b.Name && a.Description == b.Description && a.Provider == b.Provider &&
		a.Model == b.Model && slices.Equal(a.Tools, b.Tools)
}

// AgentStore is where a persistent catalog keeps its agents (store.Store is one).
type AgentStore interface {
	PutAgents(ctx context.Context, agents ...store.Agent) error
	Agents(ctx context.Context) ([]store.Agent, error)
}

// persistTimeout bounds one catalog write (it runs during a worker's registration).
const persistTimeout = 5 * time.Second

// Catalog is the union of agents ever registered. Agents stay after their workers
// leave, so tasks for a known agent can queue while no worker is connected. A
// catalog made by LoadCatalog also survives restarts: it writes a new or changed
// agent to its store before the agent becomes visible.
type Catalog struct {
	mu     sync.RWMutex
	agents map[string]Agent

	persistMu sync.Mutex // orders writes to the store; held across one write
	store     AgentStore
	saved     map[string]Agent // what the store holds (guarded by persistMu)
	log       *slog.Logger
}

// NewCatalog returns an empty in-memory catalog.
func NewCatalog() *Catalog { return &Catalog{agents: map[string]Agent{}} }

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
	c := &Catalog{agents: make(map[string]Agent, len(stored)), store: s, saved: make(map[string]Agent, len(stored)), log: log}
	for _, sa := range stored {
		a := Agent(sa)
		c.agents[a.Name] = a
		c.saved[a.Name] = a
	}
	return c, nil
}

// Add records agents; a later registration of the same name replaces its
// description. A persistent catalog first writes the agents that are new or
// changed (nothing when a worker re-registers what is known); if that write fails
// the agents are still served from memory and the write is retried on the next
// registration.
func (c *Catalog) Add(agents ...Agent) {
	if c.store != nil {
		c.persistMu.Lock()
		defer c.persistMu.Unlock()
		c.persist(agents)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range agents {
		a.Tools = slices.Clone(a.Tools)
		c.agents[a.Name] = a
	}
}

// persist writes the agents the store lacks or holds differently. persistMu is held.
func (c *Catalog) persist(agents []Agent) {
	changed := map[string]Agent{} // the last of duplicate names wins, as in memory
	for _, a := range agents {
		if old, ok := c.saved[a.Name]; ok && old.equal(a) {
			delete(changed, a.Name)
			continue
		}
		a.Tools = slices.Clone(a.Tools)
		changed[a.Name] = a
	}
	if len(changed) == 0 {
		return
	}
	rows := make([]store.Agent, 0, len(changed))
	for _, a := range changed {
		rows = append(rows, store.Agent(a))
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
func (c *Catalog) List() []Agent {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Agent, 0, len(c.agents))
	for _, a := range c.agents {
		a.Tools = slices.Clone(a.Tools)
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Agent) int { return strings.Compare(a.Name, b.Name) })
	return out
}
