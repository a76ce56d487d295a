package dial

import (
	"errors"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
)

// warm builds, once and in the background, what gRPC's codec builds at
// the first use of each of etcd's messages that a run sends or receives:
// protobuf makes its tables of a message type by reflection then, a few
// milliseconds in all here, which the dial and etcd's first answers
// otherwise wait for. It goes through the codec gRPC itself uses, so
// that the tables it builds are the ones the calls look up.
var warm sync.Once

func warmCodec() { _ = warmMessages() }

// warmMessages marshals and unmarshals one of each message, and returns
// the first error.
func warmMessages() error {
	codec := encoding.GetCodecV2(proto.Name)
	if codec == nil {
		return errors.New("gRPC has no proto codec")
	}
	kv := []*mvccpb.KeyValue{{Key: []byte("k")}}
	header := &pb.ResponseHeader{Revision: 1}
	for _, m := range []struct{ out, in any }{
		{&pb.LeaseGrantRequest{TTL: 1}, &pb.LeaseGrantResponse{Header: header, ID: 1}},
		{&pb.LeaseKeepAliveRequest{ID: 1}, &pb.LeaseKeepAliveResponse{Header: header, ID: 1}},
		{&pb.LeaseRevokeRequest{ID: 1}, &pb.LeaseRevokeResponse{Header: header}},
		{&pb.RangeRequest{Key: []byte("k")}, &pb.RangeResponse{Header: header, Kvs: kv}},
		{&pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("k"), TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 1}}},
			Success: []*pb.RequestOp{
				{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k")}}},
				{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("k")}}},
				{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("k")}}},
				{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{}}},
			},
		}, &pb.TxnResponse{Header: header, Responses: []*pb.ResponseOp{
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: header}}},
			{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Header: header, Kvs: kv}}},
			{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: &pb.DeleteRangeResponse{Header: header}}},
			{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: &pb.TxnResponse{Header: header}}},
		}}},
		{&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}},
			&pb.WatchResponse{Header: header, Events: []*mvccpb.Event{{Kv: kv[0]}}}},
	} {
		if _, err := codec.Marshal(m.out); err != nil {
			return err
		}
		data, err := codec.Marshal(m.in)
		if err == nil {
			err = codec.Unmarshal(data, m.in)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
