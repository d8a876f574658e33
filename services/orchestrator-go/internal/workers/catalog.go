// Package workers keeps the connected agent workers (their credits, leases and
// outbound messages) and the agent catalog: every agent any worker has registered.
package workers

import (
	"slices"
	"sync"
)

// Agent describes an agent that workers can run.
type Agent struct {
	Name        string
	Description string
	Provider    string
	Model       string
	Tools       []string
}

// Catalog is the union of agents ever registered. Agents stay after their workers
// leave, so tasks for a known agent can queue while no worker is connected.
type Catalog struct {
	mu     sync.RWMutex
	agents map[string]Agent
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog { return &Catalog{agents: map[string]Agent{}} }

// Add records agents; a later registration of the same name replaces its description.
func (c *Catalog) Add(agents ...Agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range agents {
		a.Tools = slices.Clone(a.Tools)
		c.agents[a.Name] = a
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
	slices.SortFunc(out, func(a, b Agent) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
