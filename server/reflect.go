package server

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	v1reflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alphareflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/roomcast/roomcast/gen/descriptors"
)

// registerReflection serves server reflection (v1 and v1alpha) on g from
// roomcast's own descriptors with their comments (gen/descriptors), so that
// `grpcurl describe` shows the API's documentation, and from the
// descriptors linked into the binary for everything else (health,
// reflection itself).
func registerReflection(g *grpc.Server) error {
	files, err := documentedFiles()
	if err != nil {
		return err
	}
	opts := reflection.ServerOptions{
		Services:           g,
		DescriptorResolver: files,
		ExtensionResolver:  protoregistry.GlobalTypes,
	}
	v1reflectiongrpc.RegisterServerReflectionServer(g, reflection.NewServerV1(opts))
	v1alphareflectiongrpc.RegisterServerReflectionServer(g, reflection.NewServer(opts))
	return nil
}

// documentedFiles resolves roomcast's files from the embedded descriptor
// set and the rest from protoregistry.GlobalFiles.
func documentedFiles() (resolver, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(descriptors.FileDescriptorSet, &set); err != nil {
		return resolver{}, fmt.Errorf("server: reading the embedded descriptor set: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return resolver{}, fmt.Errorf("server: the embedded descriptor set: %w", err)
	}
	return resolver{own: files}, nil
}

// resolver looks descriptors up in own first, then in the global registry.
type resolver struct{ own *protoregistry.Files }

func (r resolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.own.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (r resolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.own.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}
