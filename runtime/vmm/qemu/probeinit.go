//go:build linux

package qemu

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// probeMarker is what the probe init writes to the console before it powers
// the VM off; seeing it proves a kernel really ran a user-space process.
const probeMarker = "berth-accel-ok\n"

// probeCode is a complete /init for each guest architecture, hand-assembled
// because the probe must not depend on any guest binary being available:
// write(1, probeMarker, 15); reboot(LINUX_REBOOT_MAGIC1, MAGIC2,
// LINUX_REBOOT_CMD_POWER_OFF); loop. The marker follows the code.
var probeCode = map[string][]byte{
	// x86-64 (GNU as, Intel syntax):
	//   mov eax,1; mov edi,1; lea rsi,[rip+msg]; mov edx,15; syscall
	//   mov eax,169; mov edi,0xfee1dead; mov esi,0x28121969; mov edx,0x4321fedc; syscall
	//   1: jmp 1b
	"amd64": append([]byte{
		0xb8, 0x01, 0x00, 0x00, 0x00, 0xbf, 0x01, 0x00, 0x00, 0x00, 0x48, 0x8d,
		0x35, 0x1f, 0x00, 0x00, 0x00, 0xba, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05,
		0xb8, 0xa9, 0x00, 0x00, 0x00, 0xbf, 0xad, 0xde, 0xe1, 0xfe, 0xbe, 0x69,
		0x19, 0x12, 0x28, 0xba, 0xdc, 0xfe, 0x21, 0x43, 0x0f, 0x05, 0xeb, 0xfe,
	}, probeMarker...),
	// AArch64, 14 instructions then the marker at offset 56:
	//   movz x0,#1; adr x1,msg; movz x2,#15; movz x8,#64 (write); svc #0
	//   movz x0,#0xdead; movk x0,#0xfee1,lsl16; movz x1,#0x1969; movk x1,#0x2812,lsl16
	//   movz x2,#0xfedc; movk x2,#0x4321,lsl16; movz x8,#142 (reboot); svc #0; b .
	"arm64": append(le32(
		0xd2800020, 0x100001a1, 0xd28001e2, 0xd2800808, 0xd4000001,
		0xd29bd5a0, 0xf2bfdc20, 0xd2832d21, 0xf2a50241,
		0xd29fdb82, 0xf2a86422, 0xd28011c8, 0xd4000001, 0x14000000,
	), probeMarker...),
}

func le32(words ...uint32) []byte {
	b := make([]byte, 4*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

// probeELF wraps probeCode in a minimal static ELF64 executable: one
// PT_LOAD segment (read+execute) holding headers and code.
func probeELF(arch string) ([]byte, error) {
	code, ok := probeCode[arch]
	if !ok {
		return nil, fmt.Errorf("no probe init for %s", arch)
	}
	machine := map[string]uint16{"amd64": 62, "arm64": 183}[arch]
	const base, ehsize, phsize = 0x400000, 64, 56
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	binary.Write(&b, le, uint16(2))                  // e_type EXEC
	binary.Write(&b, le, machine)                    // e_machine
	binary.Write(&b, le, uint32(1))                  // e_version
	binary.Write(&b, le, uint64(base+ehsize+phsize)) // e_entry
	binary.Write(&b, le, uint64(ehsize))             // e_phoff
	binary.Write(&b, le, uint64(0))                  // e_shoff
	binary.Write(&b, le, uint32(0))                  // e_flags
	binary.Write(&b, le, uint16(ehsize))             // e_ehsize
	binary.Write(&b, le, uint16(phsize))             // e_phentsize
	binary.Write(&b, le, uint16(1))                  // e_phnum
	binary.Write(&b, le, uint16(0))                  // e_shentsize
	binary.Write(&b, le, uint16(0))                  // e_shnum
	binary.Write(&b, le, uint16(0))                  // e_shstrndx
	total := uint64(ehsize + phsize + len(code))
	binary.Write(&b, le, uint32(1))      // p_type LOAD
	binary.Write(&b, le, uint32(5))      // p_flags R+X
	binary.Write(&b, le, uint64(0))      // p_offset
	binary.Write(&b, le, uint64(base))   // p_vaddr
	binary.Write(&b, le, uint64(base))   // p_paddr
	binary.Write(&b, le, total)          // p_filesz
	binary.Write(&b, le, total)          // p_memsz
	binary.Write(&b, le, uint64(0x1000)) // p_align
	b.Write(code)
	return b.Bytes(), nil
}

// probeInitramfs is an initramfs whose /init is the probe program.
func probeInitramfs(arch string) ([]byte, error) {
	elf, err := probeELF(arch)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	c := &cpioWriter{w: &b}
	c.Dir("dev")
	c.CharDev("dev/console", 5, 1)
	c.File("init", 0o755, elf)
	if err := c.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
