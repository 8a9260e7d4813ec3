package enrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sensu-tlsd/sensu-tlsd/internal/atomicfile"
	"github.com/sensu-tlsd/sensu-tlsd/internal/flock"
)

// Store keeps one Record per agent name. Every write is a compare-and-swap
// on the version Get returned, so a decision made on a record another
// member changed meanwhile is retried rather than lost.
type Store interface {
	// Get returns name's record and its version; found is false (and the
	// version 0) when there is none.
	Get(ctx context.Context, name string) (rec Record, version int64, found bool, err error)
	// Put stores rec if its name's record is still at version (0: absent),
	// else returns ErrConflict.
	Put(ctx context.Context, rec Record, version int64) error
	// List returns every record, sorted by name.
	List(ctx context.Context) ([]Record, error)
	Close() error
}

// ErrConflict is a Put whose record changed since it was read.
var ErrConflict = errors.New("the record changed since it was read")

// Update applies change to name's record until its Put wins the race,
// and returns the stored record with whatever change returned besides.
func Update[T any](ctx context.Context, s Store, name string, change func(rec Record, found bool) (Record, T, error)) (Record, T, error) {
	for {
		rec, version, found, err := s.Get(ctx, name)
		var zero T
		if err != nil {
			return Record{}, zero, err
		}
		next, extra, err := change(rec, found)
		if err != nil {
			return rec, extra, err
		}
		err = s.Put(ctx, next, version)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return next, extra, err
	}
}

// FileStore is a Store in one JSON file, for a single backend; a flock
// serialises writers across processes (the daemon and `agents approve`).
type FileStore struct {
	path string
}

// fileRecords is the file's content: each record with its version.
type fileRecords map[string]struct {
	Version int64  `json:"version"`
	Record  Record `json:"record"`
}

// NewFileStore returns the store in dir/agents.json, creating dir (0700).
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("enrolment store: %w", err)
	}
	return &FileStore{path: filepath.Join(dir, "agents.json")}, nil
}

func (s *FileStore) read() (fileRecords, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileRecords{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("enrolment store: %w", err)
	}
	recs := fileRecords{}
	if err := json.Unmarshal(data, &recs); err != nil {
		return nil, fmt.Errorf("enrolment store %s: %v: restore it from a backup, or move it away to start over (every agent enrols again)", s.path, err)
	}
	return recs, nil
}

func (s *FileStore) Get(_ context.Context, name string) (Record, int64, bool, error) {
	recs, err := s.read()
	if err != nil {
		return Record{}, 0, false, err
	}
	r, ok := recs[name]
	return r.Record, r.Version, ok, nil
}

func (s *FileStore) Put(ctx context.Context, rec Record, version int64) error {
	unlock, err := flock.Lock(ctx, s.path+".lock", 0o600)
	if err != nil {
		return err
	}
	defer unlock()
	recs, err := s.read()
	if err != nil {
		return err
	}
	if recs[rec.Name].Version != version {
		return ErrConflict
	}
	e := recs[rec.Name]
	e.Version, e.Record = version+1, rec
	recs[rec.Name] = e
	data, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.path, append(data, '\n'), atomicfile.Mode(0o600))
}

func (s *FileStore) List(context.Context) ([]Record, error) {
	recs, err := s.read()
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Record)
	}
	sortRecords(out)
	return out, nil
}

func (s *FileStore) Close() error { return nil }

func sortRecords(recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int { return strings.Compare(a.Name, b.Name) })
}
