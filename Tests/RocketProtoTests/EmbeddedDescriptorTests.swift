import RocketMQAPI
import RocketMQTestingSchema
import RocketProto
import Testing

@Suite("Embedded file descriptors for reflection")
struct EmbeddedDescriptorTests {
    @Test("a generated file's descriptor decodes and names its messages, services and imports")
    func descriptorDescribesTheFile() throws {
        let file = ProtoFiles.rocketmq_testing_v1_fields_proto
        let proto = try Google_Protobuf_FileDescriptorProto(serializedBytes: file.serialized)
        #expect(proto.name == "rocketmq/testing/v1/fields.proto")
        #expect(proto.package == "rocketmq.testing.v1")
        #expect(proto.messageType.map(\.name) == ["AllFields", "FewFields", "Tree", "NameClash"])
        #expect(proto.service.first?.method.map(\.name) == ["Unary", "ServerStream", "ClientStream", "Bidi"])
        #expect(proto.dependency.contains("google/protobuf/timestamp.proto"))
        // Source info is stripped: reflection serves the schema, not the comments.
        #expect(proto.sourceCodeInfo == nil)
        // proto3 `optional` stays visible to reflection clients.
        let optional = proto.messageType.first?.field.first { $0.name == "o_int32" }
        #expect(optional?.proto3Optional == true)
    }

    @Test("the transitive closure lists every import once, dependencies first")
    func transitiveClosureIsOrdered() {
        let names = ProtoFiles.rocketmq_testing_v1_fields_proto.transitiveClosure.map(\.name)
        #expect(names.last == "rocketmq/testing/v1/fields.proto")
        #expect(Set(names) == [
            "google/protobuf/duration.proto", "google/protobuf/empty.proto", "google/protobuf/timestamp.proto",
            "rocketmq/testing/v1/other.proto", "rocketmq/testing/v1/fields.proto",
        ])
        #expect(names.count == 5)
    }

    @Test("service namespaces expose their name, methods and file")
    func serviceNamespaceIsComplete() {
        #expect(Rocketmq_Testing_V1_Echo.serviceName == "rocketmq.testing.v1.Echo")
        #expect(Rocketmq_Testing_V1_Echo.Method.all.map(\.method) == ["Unary", "ServerStream", "ClientStream", "Bidi"])
        #expect(Rocketmq_Testing_V1_Echo.fileDescriptor.name == "rocketmq/testing/v1/fields.proto")
        #expect(Apache_Rocketmq_V2_MessagingService.Method.all.count >= 12)
    }
}
