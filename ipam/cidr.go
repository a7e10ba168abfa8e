package ipam

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
)

// Default block prefix lengths when a pool leaves blockSize at 0.
const (
	DefaultBlockBits4 = 26
	DefaultBlockBits6 = 122
)

// maxBlockIndexBits caps how many blocks of a pool are addressable; 2^62
// blocks is more than any cluster will ever create.
const maxBlockIndexBits = 62

// BlockBits returns the block prefix length for a pool cidr and its
// configured blockSize (0 means the family default).
func BlockBits(pool netip.Prefix, blockSize int32) int {
	if blockSize != 0 {
		return int(blockSize)
	}
	if pool.Addr().Is4() {
		return DefaultBlockBits4
	}
	return DefaultBlockBits6
}

// BlockCapacity is the number of addresses in a block.
func BlockCapacity(block netip.Prefix) int {
	return 1 << (block.Addr().BitLen() - block.Bits())
}

// NumBlocks is the number of blocks of blockBits in pool, capped at 2^62.
func NumBlocks(pool netip.Prefix, blockBits int) uint64 {
	n := blockBits - pool.Bits()
	if n < 0 {
		return 0
	}
	if n > maxBlockIndexBits {
		n = maxBlockIndexBits
	}
	return 1 << n
}

// BlockAt returns the index-th block of blockBits in pool.
func BlockAt(pool netip.Prefix, blockBits int, index uint64) netip.Prefix {
	shift := uint(pool.Addr().BitLen() - blockBits)
	return netip.PrefixFrom(addOffset(pool.Masked().Addr(), index, shift), blockBits)
}

// BlockOf returns the block of blockBits that holds addr.
func BlockOf(addr netip.Addr, blockBits int) netip.Prefix {
	p, _ := addr.Prefix(blockBits)
	return p
}

// AddrAt returns the address at ordinal in block.
func AddrAt(block netip.Prefix, ordinal int) netip.Addr {
	return addOffset(block.Masked().Addr(), uint64(ordinal), 0)
}

// Ordinal returns addr's offset within block, or an error when block does
// not hold addr.
func Ordinal(block netip.Prefix, addr netip.Addr) (int, error) {
	if !block.Contains(addr) {
		return 0, fmt.Errorf("address %s is not in block %s", addr, block)
	}
	_, lo := split(addr)
	_, base := split(block.Masked().Addr())
	return int(lo - base), nil
}

// HostPrefix returns addr as a /32 or /128.
func HostPrefix(addr netip.Addr) netip.Prefix {
	return netip.PrefixFrom(addr, addr.BitLen())
}

func split(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// addOffset adds offset<<shift to a, within a's family.
func addOffset(a netip.Addr, offset uint64, shift uint) netip.Addr {
	hi, lo := split(a)
	var ohi, olo uint64
	switch {
	case shift == 0:
		olo = offset
	case shift < 64:
		olo = offset << shift
		ohi = offset >> (64 - shift)
	default:
		ohi = offset << (shift - 64)
	}
	lo, carry := bits.Add64(lo, olo, 0)
	hi, _ = bits.Add64(hi, ohi, carry)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	r := netip.AddrFrom16(b)
	if a.Is4() {
		return r.Unmap()
	}
	return r
}
