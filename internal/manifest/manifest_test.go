package manifest

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func valid() *Manifest {
	return &Manifest{
		FormatVersion:   FormatVersion,
		Engine:          "postgres",
		CreatedAt:       time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		CompletedAt:     time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC),
		Compression:     Compression{Algorithm: "zstd", Level: 3},
		Encryption:      Encryption{Mode: "x25519", RecipientFingerprints: []string{"0123456789abcdef"}},
		DataObject:      "data.sql.zst.age",
		StoredSize:      10,
		PlaintextSize:   20,
		SHA256:          strings.Repeat("a", 64),
		PlaintextSHA256: strings.Repeat("b", 64),
		BackstopVersion: "dev",
	}
}

func TestRoundTrip(t *testing.T) {
	m := valid()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"formatVersion": 1`, `"plaintextSha256"`, `"recipientFingerprints"`, `"dataObject": "data.sql.zst.age"`} {
		if !bytes.Contains(b, []byte(field)) {
			t.Errorf("manifest lacks %s:\n%s", field, b)
		}
	}
	got, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != m.SHA256 || !got.CreatedAt.Equal(m.CreatedAt) || got.Encryption.RecipientFingerprints[0] != "0123456789abcdef" {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestValidate(t *testing.T) {
	for name, mut := range map[string]func(*Manifest){
		"future format":  func(m *Manifest) { m.FormatVersion = FormatVersion + 1 },
		"no engine":      func(m *Manifest) { m.Engine = "" },
		"escaping data":  func(m *Manifest) { m.DataObject = "../x" },
		"bad sha":        func(m *Manifest) { m.SHA256 = "xyz" },
		"bad encryption": func(m *Manifest) { m.Encryption.Mode = "rot13" },
	} {
		m := valid()
		mut(m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A manifest with the inventory of 50,000 tables is written and read back;
// one too large to read back is not written.
func TestInventoryOfManyTables(t *testing.T) {
	m := valid()
	m.Inventory = &Inventory{}
	for i := range 50000 {
		m.Inventory.Tables = append(m.Inventory.Tables, TableRows{Schema: "tenant_schema_0001", Name: "table_with_a_longish_name_" + strings.Repeat("x", i%10), Rows: int64(i) * 1000})
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Read of %d bytes: %v", len(b), err)
	}
	if len(got.Inventory.Tables) != 50000 || got.Inventory.Tables[49999] != m.Inventory.Tables[49999] {
		t.Fatalf("read back %d tables", len(got.Inventory.Tables))
	}
	for i := range 50000 {
		m.Inventory.Tables = append(m.Inventory.Tables, m.Inventory.Tables[i])
	}
	if b, err := m.Marshal(); err == nil {
		t.Fatalf("a manifest of %d bytes was written; Read refuses more than %d", len(b), maxSize)
	}
}
