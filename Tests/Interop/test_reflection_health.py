"""Server reflection and health on our server, read by grpcio-reflection and grpcio-health-checking."""
import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as alpha_pb2, reflection_pb2_grpc as alpha_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from google.protobuf.descriptor_pool import DescriptorPool

EXPECTED_SERVICES = {
    "grpc.testing.TestService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


@pytest.fixture(scope="module")
def channel(interop_server):
    channel = grpc.insecure_channel(interop_server)
    grpc.channel_ready_future(channel).result(timeout=10)
    yield channel
    channel.close()


def test_reflection_lists_every_service(channel):
    database = ProtoReflectionDescriptorDatabase(channel)
    assert set(database.get_services()) == EXPECTED_SERVICES


def test_reflection_resolves_every_service_and_its_messages(channel):
    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    for name in EXPECTED_SERVICES:
        service = pool.FindServiceByName(name)
        assert service.methods, name
        for method in service.methods:
            # Resolving input and output types pulls in the transitive imports.
            assert method.input_type.full_name
            assert method.output_type.full_name
    unary = pool.FindServiceByName("grpc.testing.TestService").methods_by_name["UnaryCall"]
    assert unary.input_type.full_name == "grpc.testing.SimpleRequest"
    assert "payload" in unary.input_type.fields_by_name
    assert pool.FindMessageTypeByName("grpc.testing.Payload").fields_by_name["body"].type == descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    assert pool.FindEnumTypeByName("grpc.health.v1.HealthCheckResponse.ServingStatus").values_by_name["SERVING"].number == 1


def _ask(channel, **request):
    stub = alpha_grpc.ServerReflectionStub(channel)
    return list(stub.ServerReflectionInfo(iter([alpha_pb2.ServerReflectionRequest(**request)]), timeout=10))


def test_reflection_file_by_filename_includes_imports(channel):
    [response] = _ask(channel, file_by_filename="grpc/testing/test.proto")
    names = [descriptor_pb2.FileDescriptorProto.FromString(raw).name for raw in response.file_descriptor_response.file_descriptor_proto]
    assert names[0] == "grpc/testing/test.proto"
    assert {"grpc/testing/empty.proto", "grpc/testing/messages.proto"} <= set(names)


def test_reflection_symbol_lookup_for_methods_fields_and_enum_values(channel):
    for symbol in ["grpc.testing.TestService.UnaryCall", "grpc.testing.SimpleRequest.payload", "grpc.testing.COMPRESSABLE"]:
        [response] = _ask(channel, file_containing_symbol=symbol)
        first = descriptor_pb2.FileDescriptorProto.FromString(response.file_descriptor_response.file_descriptor_proto[0])
        assert first.name.startswith("grpc/testing/"), symbol


def test_reflection_unknown_symbol_and_file_are_not_found(channel):
    [symbol] = _ask(channel, file_containing_symbol="no.such.Symbol")
    assert symbol.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no.such.Symbol" in symbol.error_response.error_message
    [file] = _ask(channel, file_by_filename="no/such.proto")
    assert file.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_health_check_and_unknown_service(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    assert stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    served = stub.Check(health_pb2.HealthCheckRequest(service="grpc.testing.TestService"), timeout=10)
    assert served.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as error:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_watch_streams_current_status(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    stream = stub.Watch(health_pb2.HealthCheckRequest(service="grpc.testing.TestService"), timeout=5)
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
    stream.cancel()
    unknown = stub.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert next(unknown).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    unknown.cancel()
