package agent

// /metrics: gauges read from the components at scrape time, so nothing
// on the hot paths updates counters.

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func (a *Agent) newMetrics() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "meshnet", Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "meshnet", Name: name, Help: help}, f))
	}
	gauge("networks", "Networks this agent knows (local and global).", func() float64 { return float64(a.nets.Table.Len()) })
	gauge("sandboxes", "Sandboxes on this host.", func() float64 {
		n, _ := a.recs.Counts()
		return float64(n)
	})
	gauge("endpoints", "Endpoints on this host, joined or not.", func() float64 {
		_, n := a.recs.Counts()
		return float64(n)
	})
	gauge("remote_endpoints", "Endpoints on other hosts in networks with a local endpoint.", func() float64 {
		cache, _ := a.members.Saved()
		n := 0
		for _, eps := range cache {
			n += len(eps)
		}
		return float64(n)
	})
	gauge("datapath_failing_networks", "Networks whose last programming failed and are retried with back-off.", func() float64 {
		return float64(a.dp.Failing())
	})
	counter("datapath_applies_total", "Calls into the kernel datapath: a network applied or removed, or the full apply at start.", func() float64 {
		return float64(a.dp.Applies())
	})
	counter("state_saves_total", "Writes of the agent's state to the data dir.", func() float64 {
		return float64(a.state.Saves())
	})
	for _, outcome := range []string{"local", "forwarded", "failed"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "meshnet", Name: "dns_queries_total",
			Help:        "Questions to the embedded DNS server: answered locally, forwarded upstream, or failed.",
			ConstLabels: prometheus.Labels{"outcome": outcome}}, func() float64 {
			return float64(a.dp.DNSQueries(outcome))
		}))
	}
	gauge("gossip_members", "Members of the gossip cluster, this node included.", func() float64 {
		return float64(len(a.members.Members()))
	})
	counter("gossip_clock_jumps_refused_total", "Gossip records and states refused because their Lamport time was implausibly far ahead (forged or corrupt).", func() float64 {
		return float64(a.members.ClockJumpsRefused())
	})
	counter("gossip_records_invalid_total", "Gossip records refused as malformed or not bound to their writer (an endpoint on another node, a VTEP its node does not announce).", func() float64 {
		return float64(a.members.Refusals().Invalid)
	})
	counter("gossip_takeovers_refused_total", "Gossip records refused because they change or delete a live endpoint another node wrote.", func() float64 {
		return float64(a.members.Refusals().Takeovers)
	})
	counter("gossip_table_full_refused_total", "Gossip records about new endpoints refused because the table held its limit (262,144).", func() float64 {
		return float64(a.members.Refusals().TableFull)
	})
	counter("gossip_queue_dropped_total", "Gossip events and broadcasts dropped because a queue held its limit (65,536); push/pull and snapshots repair them.", func() float64 {
		return float64(a.members.Refusals().QueueDrops)
	})
	gauge("store_up", "1 when the cluster store answers, else 0.", func() float64 {
		if _, ok := a.conn.Ready(); ok {
			return 1
		}
		return 0
	})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
