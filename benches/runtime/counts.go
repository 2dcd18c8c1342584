package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"ndpresence/harness"
)

// The counting twin (benches/tools/twin.py) counts every call to each of the
// module's imports and, when an nd_* export returns, logs the counters as one
// binary message: "NDPBENCH" then one little-endian u64 per import, in the
// order of <twin>.imports.json.
const twinMagic = "NDPBENCH"

// bytesPer is how many bytes one call of a kernel copy function moves.
var bytesPer = map[string]int64{"load_u64": 8, "load_u8": 1, "input_load_u64": 8, "input_load_u8": 1, "store_u64": 8, "store_u8": 1}

func countScenario(h *harness.Harness, twin string, sc scenario, res *ScenResult) error {
	var imports [][2]string
	b, err := os.ReadFile(twin + ".imports.json")
	if err == nil {
		err = json.Unmarshal(b, &imports)
	}
	if err != nil {
		return err
	}
	snap := takeSnapshot(h)
	input := sc.input()
	var first map[string]int64
	for i := 0; i < 2; i++ { // twice: the counts must not change
		r, _ := call(h, snap, sc.export, input)
		if r.Err != nil {
			return r.Err
		}
		var msg string
		for _, l := range h.Logs {
			if strings.HasPrefix(l.Msg, twinMagic) && l.Func == sc.export {
				msg = l.Msg // the outermost call logs last
			}
		}
		if len(msg) != len(twinMagic)+8*len(imports) {
			return fmt.Errorf("no counter message from the twin (%d log lines)", len(h.Logs))
		}
		counts := map[string]int64{}
		for j, im := range imports {
			if n := int64(binary.LittleEndian.Uint64([]byte(msg[len(twinMagic)+8*j:]))); n > 0 {
				counts[im[0]+"."+im[1]] += n
			}
		}
		if first == nil {
			first = counts
		} else if fmt.Sprint(first) != fmt.Sprint(counts) {
			return fmt.Errorf("host calls differ between two identical calls: %v vs %v", first, counts)
		}
	}
	res.Host, res.Counted = first, true
	res.KernelCalls, res.UserCalls, res.BytesIn, res.BytesOut = 0, 0, 0, 0
	for k, n := range first {
		mod, name, _ := strings.Cut(k, ".")
		if mod == "extism:host/user" { // Navidrome's host services
			res.UserCalls += n
		} else { // the extism kernel and WASI (the wall clock)
			res.KernelCalls += n
		}
		if strings.HasPrefix(name, "store_") {
			res.BytesOut += n * bytesPer[name]
		} else {
			res.BytesIn += n * bytesPer[name]
		}
	}
	return nil
}
