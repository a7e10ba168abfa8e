package plugin

import (
	"errors"
	"fmt"
	"log/slog"
)

// undoStep reverses one completed (or possibly completed) step of an ADD.
type undoStep struct {
	name string
	run  func() error
}

// undoList is the explicit rollback of an ADD: each step pushes its undo
// once it may have changed something, and a failure runs them newest
// first. It never depends on which error variable is in scope.
type undoList struct {
	steps []undoStep
}

func (u *undoList) push(name string, run func() error) {
	u.steps = append(u.steps, undoStep{name: name, run: run})
}

// run undoes every step, newest first, and carries on past failures so that
// one stuck step does not leave the others in place.
func (u *undoList) run(log *slog.Logger) error {
	var errs []error
	for i := len(u.steps) - 1; i >= 0; i-- {
		s := u.steps[i]
		if err := s.run(); err != nil {
			log.Error("rollback step failed", "step", s.name, "err", err)
			errs = append(errs, fmt.Errorf("undo %s: %w", s.name, err))
			continue
		}
		log.Debug("rolled back", "step", s.name)
	}
	u.steps = nil
	return errors.Join(errs...)
}
