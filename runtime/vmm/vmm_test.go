package vmm

import (
	"net"
	"testing"
)

func TestStableMACIsStableLocalUnicast(t *testing.T) {
	a, b := StableMAC("c1"), StableMAC("c1")
	if a != b {
		t.Fatalf("not stable: %s vs %s", a, b)
	}
	if StableMAC("c2") == a {
		t.Fatal("two IDs share a MAC")
	}
	hw, err := net.ParseMAC(a)
	if err != nil {
		t.Fatal(err)
	}
	if hw[0]&0x02 == 0 || hw[0]&0x01 != 0 {
		t.Fatalf("%s is not locally administered unicast", a)
	}
}

func TestValidate(t *testing.T) {
	good := Config{ID: "x", Kernel: "k", Initrd: "i", CPUs: 1, MemoryMiB: 256, StateDir: "/tmp"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.MemoryMiB = 16
	if bad.Validate() == nil {
		t.Fatal("16 MiB accepted")
	}
}
