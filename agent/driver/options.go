package driver

import (
	"slices"
	"strconv"
	"strings"
)

// Option keys shared by drivers: Docker's long names and meshnet's short
// ones mean the same.
const (
	OptMTU     = "com.docker.network.driver.mtu"
	OptMTUAbbr = "mtu"
)

// CheckOptions refuses an option key the driver does not know, naming the
// ones it does.
func CheckOptions(driver string, options map[string]string, known []string) error {
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first unknown key in order, for a stable message
	for _, k := range keys {
		if slices.Contains(known, k) {
			continue
		}
		if len(known) == 0 {
			return Invalid("the %s driver takes no options (got %q)", driver, k)
		}
		return Invalid("option %q is not known to the %s driver (it knows %s)", k, driver, strings.Join(known, ", "))
	}
	return nil
}

// ParseMTU reads an MTU option: a number from 576 to max.
func ParseMTU(v string, max int) (int, error) {
	mtu, err := strconv.Atoi(v)
	if err != nil || mtu < 576 || mtu > 65535 {
		return 0, Invalid("invalid MTU %q: give a number from 576 to 65535", v)
	}
	if max > 0 && mtu > max {
		return 0, Invalid("MTU %d is too large: at most %d fits this host's network", mtu, max)
	}
	return mtu, nil
}
