package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"sort"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"google.golang.org/protobuf/proto"
)

// Badger's MANIFEST: 8 bytes of magic ("Bdgr", external magic, format
// version), then change sets, each a big-endian length, a CRC-32C of the
// protobuf bytes and the protobuf-encoded pb.ManifestChangeSet. Badger's
// own reader refuses the whole file at the first bad change set and its
// writer truncates a torn tail in place; the read path parses it here,
// keeps the good prefix and never writes the original.

var manifestMagic = []byte{'B', 'd', 'g', 'r'}

// badgerManifestVersion is the format version of Badger v4's MANIFEST.
const badgerManifestVersion = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// tableEntry is one table of a MANIFEST.
type tableEntry struct {
	level       uint32
	keyID       uint64
	compression uint32
}

// manifestState is what a MANIFEST says, and how much of it could be read.
type manifestState struct {
	tables map[uint64]tableEntry
	// problem is empty when the whole file was read; otherwise it says
	// where reading stopped and why.
	problem string
	// usable is false when not even the magic could be read: the tables
	// then come from the directory alone.
	usable bool
}

// readManifest parses the MANIFEST at path without writing anything.
func readManifest(path string) manifestState {
	st := manifestState{tables: map[uint64]tableEntry{}}
	b, err := os.ReadFile(path)
	if err != nil {
		st.problem = fmt.Sprintf("MANIFEST unreadable: %v", err)
		return st
	}
	if len(b) < 8 || !bytes.Equal(b[:4], manifestMagic) {
		st.problem = fmt.Sprintf("MANIFEST (%d bytes) does not start with Badger's magic", len(b))
		return st
	}
	if v := binary.BigEndian.Uint16(b[6:8]); v != badgerManifestVersion {
		st.problem = fmt.Sprintf("MANIFEST has format version %d, this build reads %d", v, badgerManifestVersion)
		return st
	}
	st.usable = true
	off := 8
	for off < len(b) {
		if len(b)-off < 8 {
			st.problem = fmt.Sprintf("MANIFEST ends with a torn change set at byte %d of %d", off, len(b))
			return st
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n > len(b)-off-8 {
			st.problem = fmt.Sprintf("MANIFEST ends with a torn change set at byte %d of %d", off, len(b))
			return st
		}
		body := b[off+8 : off+8+n]
		if crc32.Checksum(body, castagnoli) != sum {
			st.problem = fmt.Sprintf("MANIFEST change set at byte %d of %d fails its checksum; the rest is ignored", off, len(b))
			return st
		}
		var set pb.ManifestChangeSet
		if err := proto.Unmarshal(body, &set); err != nil {
			st.problem = fmt.Sprintf("MANIFEST change set at byte %d of %d does not decode (%v); the rest is ignored", off, len(b), err)
			return st
		}
		for _, c := range set.Changes {
			switch c.Op {
			case pb.ManifestChange_CREATE:
				st.tables[c.Id] = tableEntry{level: c.Level, keyID: c.KeyId, compression: c.Compression}
			case pb.ManifestChange_DELETE:
				delete(st.tables, c.Id)
			}
		}
		off += 8 + n
	}
	return st
}

// writeManifest writes a MANIFEST at path that creates exactly tables.
func writeManifest(path string, tables map[uint64]tableEntry) error {
	ids := make([]uint64, 0, len(tables))
	for id := range tables {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var set pb.ManifestChangeSet
	for _, id := range ids {
		t := tables[id]
		set.Changes = append(set.Changes, &pb.ManifestChange{Id: id, Op: pb.ManifestChange_CREATE,
			Level: t.level, KeyId: t.keyID, Compression: t.compression})
	}
	body, err := proto.Marshal(&set)
	if err != nil {
		return err
	}
	b := append([]byte(nil), manifestMagic...)
	b = binary.BigEndian.AppendUint16(b, 0) // external magic: none
	b = binary.BigEndian.AppendUint16(b, badgerManifestVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(body, castagnoli))
	b = append(b, body...)
	return os.WriteFile(path, b, 0o600)
}

// defaultCompression is the compression of the tables this package writes
// (Badger's default), assumed for a table no MANIFEST describes.
const defaultCompression = uint32(options.Snappy)
