package datapath

import "slices"

// IsolationRules returns the interfaces of the IPv6 isolation rules in dp's
// host namespace, sorted: the prohibit rules at IsolationRulePriority, as
// Apply reads them (netlink's own rule dump cannot tell a rule's action).
func IsolationRules(dp *Datapath) ([]string, error) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	rules, err := dp.listIsolationRules()
	if err != nil {
		return nil, err
	}
	var names []string
	for name := range rules {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}
