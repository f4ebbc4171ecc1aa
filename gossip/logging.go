package gossip

import (
	"bytes"
	"context"
	"log/slog"
)

// logWriter turns memberlist's standard-library log lines ("[WARN]
// memberlist: …") into slog records at the matching level, so the agent has
// one log stream with one format.
type logWriter struct {
	logger *slog.Logger
}

var logLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG] ", slog.LevelDebug},
	{"[INFO] ", slog.LevelInfo},
	{"[WARN] ", slog.LevelWarn},
	{"[ERR] ", slog.LevelError},
	{"[ERROR] ", slog.LevelError},
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimRight(p, "\n")
	level := slog.LevelInfo
	for _, l := range logLevels {
		if rest, ok := bytes.CutPrefix(line, []byte(l.prefix)); ok {
			line, level = rest, l.level
			break
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	w.logger.Log(context.Background(), level, string(line), "component", "memberlist")
	return len(p), nil
}
