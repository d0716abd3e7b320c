import RocketMQAPI
import RocketMQAdmin
import RocketMQTestingSchema
import RocketProto
import Testing

/// The pool every test uses: the test schema (fields.proto, other.proto) and the well-known types.
func testPool() throws -> DescriptorPool {
    try DescriptorPool(embedded: [ProtoFiles.rocketmq_testing_v1_fields_proto])
}

func allFieldsType(_ pool: DescriptorPool) throws -> MessageDescriptor {
    try #require(pool.message(named: "rocketmq.testing.v1.AllFields"))
}

