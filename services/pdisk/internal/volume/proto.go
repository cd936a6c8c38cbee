package volume

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
)

var protoTypes = map[Type]volumev1.VolumeType{
	MachineImageOrigin:    volumev1.VolumeType_VOLUME_TYPE_MACHINE_IMAGE_ORIGIN,
	MachineImageLive:      volumev1.VolumeType_VOLUME_TYPE_MACHINE_IMAGE_LIVE,
	DataImageOrigin:       volumev1.VolumeType_VOLUME_TYPE_DATA_IMAGE_ORIGIN,
	DataImageLive:         volumev1.VolumeType_VOLUME_TYPE_DATA_IMAGE_LIVE,
	DataImageRawReadOnly:  volumev1.VolumeType_VOLUME_TYPE_DATA_IMAGE_RAW_READONLY,
	DataImageRawReadWrite: volumev1.VolumeType_VOLUME_TYPE_DATA_IMAGE_RAW_READ_WRITE,
}

// ProtoType returns the bus form of t.
func ProtoType(t Type) volumev1.VolumeType { return protoTypes[t] }

// TypeOf returns the document form of a bus volume type; def when unspecified.
func TypeOf(t volumev1.VolumeType, def Type) Type {
	for k, v := range protoTypes {
		if v == t {
			return k
		}
	}
	return def
}

var protoStates = map[State]volumev1.VolumeState{
	Downloading: volumev1.VolumeState_VOLUME_STATE_CREATING,
	Available:   volumev1.VolumeState_VOLUME_STATE_AVAILABLE,
	InUse:       volumev1.VolumeState_VOLUME_STATE_AVAILABLE,
	Quarantined: volumev1.VolumeState_VOLUME_STATE_DELETING,
	Failed:      volumev1.VolumeState_VOLUME_STATE_ERROR,
	Error:       volumev1.VolumeState_VOLUME_STATE_ERROR,
}

// Proto returns the bus form of v, as billing and vmctl read it.
func (v *Volume) Proto() *volumev1.Volume {
	vis := volumev1.Visibility_VISIBILITY_PRIVATE
	if v.Visibility == Public {
		vis = volumev1.Visibility_VISIBILITY_PUBLIC
	}
	out := &volumev1.Volume{
		Uuid: v.UUID, Tag: v.Tag, Description: v.Description, Owner: v.Owner,
		SizeGib: uint32(v.Size), Visibility: vis, Count: uint32(v.Count),
		Identifier: v.Identifier, Type: ProtoType(v.Type), State: protoStates[v.State],
		StateMessage: v.StateMessage, Volatile: v.Volatile, Backend: v.Backend, Turl: v.TURL,
		Created: stampProto(v.Created), Updated: stampProto(v.Updated), Quarantine: stampProto(v.Quarantine),
	}
	for _, a := range v.Attachments {
		out.Attachments = append(out.Attachments, &volumev1.Attachment{
			MachineUuid: machineUUID(a.Machine), Device: a.Device, HotPlugged: a.HotPlugged, AttachedAt: stampProto(a.Attached),
		})
	}
	return out
}

// MachineID is the CIMI id of a machine given by uuid or id.
func MachineID(m string) string {
	if m == "" || len(m) > 8 && m[:8] == "Machine/" {
		return m
	}
	return "Machine/" + m
}

func machineUUID(id string) string {
	if len(id) > 8 && id[:8] == "Machine/" {
		return id[8:]
	}
	return id
}

func stampProto(s string) *timestamppb.Timestamp {
	t := ParseStamp(s)
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t.Truncate(time.Microsecond))
}
