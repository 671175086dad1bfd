// Command envoy-api writes Envoy's exact API (the file descriptors embedded in
// github.com/envoyproxy/go-control-plane/envoy at the version pinned in go.mod)
// as one serialized google.protobuf.FileDescriptorSet.
//
// Why: the control plane must encode resources against the API of the Envoy it
// drives (1.40.0). Older .proto snapshots lack fields such as
// DnsCacheConfig.resolved_address_filter, and protobufjs silently drops keys it
// does not know. See ../../../shared/research/envoy-egress-notes.md §0.
//
// Regenerate with tools/envoy-api/generate.sh; the output is committed so that
// users and CI need no Go.
package main

import (
	"fmt"
	"os"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: envoy-api OUT.pb")
		os.Exit(2)
	}
	var names []string
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		names = append(names, fd.Path())
		return true
	})
	sort.Strings(names) // deterministic output: same module versions, same bytes

	set := &descriptorpb.FileDescriptorSet{}
	done := map[string]bool{}
	var add func(path string)
	add = func(path string) {
		if done[path] {
			return
		}
		done[path] = true
		fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
		if err != nil {
			panic(err)
		}
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).Path()) // dependencies first, as loaders expect
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, n := range names {
		add(n)
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(os.Args[1], out, 0o644); err != nil {
		panic(err)
	}
	fmt.Printf("wrote %s: %d files, %d bytes\n", os.Args[1], len(set.File), len(out))
}
