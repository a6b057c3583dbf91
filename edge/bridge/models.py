"""IEEE 2030.5 resource models: envoy-schema's pydantic-xml models, plus what they lack.

envoy-schema carries CSIP-Aus extensions that plain `sep.xsd` does not allow and a few required
fields that real devices omit. Inbound (`*In`) classes relax those so a device's document is
accepted tolerantly; the classes we emit follow `sep.xsd` element order strictly (pydantic-xml
serialises fields in declaration order, which these declarations keep).
"""

from __future__ import annotations

from typing import ClassVar

from envoy_schema.server.schema.sep2 import der, end_device, metering_mirror, response
from envoy_schema.server.schema.sep2.base import BaseXmlModelWithNS
from envoy_schema.server.schema.sep2.der_control_types import ActivePower
from envoy_schema.server.schema.sep2.identification import Link, ListLink, Resource
from envoy_schema.server.schema.sep2.metering import Reading, ReadingType
from pydantic_xml import attr, element

NS = "urn:ieee:std:2030.5:ns"
LEGACY_NS = "http://zigbee.org/sep"
# CSIP-AUS extension namespace: v1.3 (current) first; v1.2 (`https://csipaus.org/ns`) is still
# what v1.2 clients send, so both are accepted and stored as sent.
CSIPAUS_NS = "https://csipaus.org/ns/v1.3"
CSIPAUS_NAMESPACES = (CSIPAUS_NS, "https://csipaus.org/ns")
CONTENT_TYPE = "application/sep+xml"

# --- resources envoy-schema does not model (element order as in sep.xsd) ------------------


class DeviceInformation(Resource, tag="DeviceInformation"):
    """All optional here; `REQUIRED` lists what sep.xsd requires before we serve it back."""

    functionsImplemented: str | None = element(default=None)
    lFDI: str | None = element(default=None)
    mfDate: int | None = element(default=None)
    mfHwVer: str | None = element(default=None)
    mfID: int | None = element(default=None)
    mfInfo: str | None = element(default=None)
    mfModel: str | None = element(default=None)
    mfSerNum: str | None = element(default=None)
    primaryPower: int | None = element(default=None)
    secondaryPower: int | None = element(default=None)
    swActTime: int | None = element(default=None)
    swVer: str | None = element(default=None)

    REQUIRED: ClassVar[tuple[str, ...]] = (
        "lFDI", "mfDate", "mfHwVer", "mfID", "mfModel", "mfSerNum",
        "primaryPower", "secondaryPower", "swActTime", "swVer",
    )  # fmt: skip


class DeviceStatus(Resource, tag="DeviceStatus"):
    changedTime: int | None = element(default=None)
    onCount: int | None = element(default=None)
    opState: int | None = element(default=None)
    opTime: int | None = element(default=None)

    REQUIRED: ClassVar[tuple[str, ...]] = ("changedTime",)


class PEVInfo(BaseXmlModelWithNS, tag="PEVInfo"):
    chargingPowerNow: ActivePower | None = element(default=None)
    energyRequestNow: ActivePower | None = element(default=None)
    maxForwardPower: ActivePower | None = element(default=None)
    minimumChargingDuration: int | None = element(default=None)
    targetStateOfCharge: int | None = element(default=None)
    timeChargeIsNeeded: int | None = element(default=None)
    timeChargingStatusPEV: int | None = element(default=None)


class PowerStatus(Resource, tag="PowerStatus"):
    batteryStatus: int | None = element(default=None)
    changedTime: int | None = element(default=None)
    currentPowerSource: int | None = element(default=None)
    estimatedChargeRemaining: int | None = element(default=None)
    estimatedTimeRemaining: int | None = element(default=None)
    PEVInfo_: PEVInfo | None = element(tag="PEVInfo", default=None)
    sessionTimeOnBattery: int | None = element(default=None)
    totalTimeOnBattery: int | None = element(default=None)

    REQUIRED: ClassVar[tuple[str, ...]] = ("batteryStatus", "changedTime", "currentPowerSource")


class SelfLinkedDER(der.DER, tag="DER"):
    pass


class DERList(der.DERListResponse, tag="DERList"):
    pass


class Error(BaseXmlModelWithNS, tag="Error"):
    maxRetryDuration: int | None = element(default=None)
    reasonCode: int = element()


class ResponseList(response.ResponseListResponse, tag="ResponseList"):
    pass


class MirrorUsagePointList(
    metering_mirror.MirrorUsagePointListResponse, tag="MirrorUsagePointList"
):
    pass


# --- relaxed inbound variants of envoy models ---------------------------------------------


class DERCapabilityOut(der.DERCapability, tag="DERCapability"):
    """sep.xsd has no CSIP-Aus elements: the extension fields are optional and never emitted."""

    doeModesSupported: str | None = element(ns="csipaus", default=None)  # type: ignore[assignment]


class DERCapabilityIn(DERCapabilityOut, tag="DERCapability"):
    modesSupported: str | None = element(default=None)  # type: ignore[assignment]
    rtgMaxW: ActivePower | None = element(default=None)  # type: ignore[assignment]
    type_: int | None = element(tag="type", default=None)  # type: ignore[assignment]


class DERSettingsOut(der.DERSettings, tag="DERSettings"):
    pass


class DERSettingsIn(der.DERSettings, tag="DERSettings"):
    setGradW: int | None = element(default=None)  # type: ignore[assignment]
    setMaxW: ActivePower | None = element(default=None)  # type: ignore[assignment]
    updatedTime: int | None = element(default=None)  # type: ignore[assignment]


class StatusValue(BaseXmlModelWithNS):
    """A status element read tolerantly: value kept as text (HexBinary8 or a decimal enum)."""

    dateTime: int | None = element(default=None)
    value: str | None = element(default=None)


class DERStatusOut(der.DERStatus, tag="DERStatus"):
    pass


class DERStatusIn(Resource, tag="DERStatus"):
    alarmStatus: str | None = element(default=None)
    genConnectStatus: StatusValue | None = element(tag="genConnectStatus", default=None)
    inverterStatus: StatusValue | None = element(tag="inverterStatus", default=None)
    localControlModeStatus: StatusValue | None = element(tag="localControlModeStatus", default=None)
    manufacturerStatus: StatusValue | None = element(tag="manufacturerStatus", default=None)
    operationalModeStatus: StatusValue | None = element(tag="operationalModeStatus", default=None)
    readingTime: int | None = element(default=None)
    stateOfChargeStatus: StatusValue | None = element(tag="stateOfChargeStatus", default=None)
    storageModeStatus: StatusValue | None = element(tag="storageModeStatus", default=None)
    storConnectStatus: StatusValue | None = element(tag="storConnectStatus", default=None)


class DERAvailabilityOut(der.DERAvailability, tag="DERAvailability"):
    pass


class DERAvailabilityIn(der.DERAvailability, tag="DERAvailability"):
    readingTime: int | None = element(default=None)  # type: ignore[assignment]


class MirrorMeterReadingIn(BaseXmlModelWithNS, tag="MirrorMeterReading"):
    """Tolerant: mRID and description optional, extra elements ignored."""

    mRID: str | None = element(default=None)
    description: str | None = element(default=None)
    reading: Reading | None = element(tag="Reading", default=None)
    readingType: ReadingType | None = element(tag="ReadingType", default=None)
    mirrorReadingSets: list[metering_mirror.MirrorReadingSet] | None = element(
        tag="MirrorReadingSet", default=None
    )


class MirrorMeterReadingListIn(BaseXmlModelWithNS, tag="MirrorMeterReadingList"):
    readings: list[MirrorMeterReadingIn] | None = element(tag="MirrorMeterReading", default=None)


class MirrorUsagePointIn(BaseXmlModelWithNS, tag="MirrorUsagePoint"):
    mRID: str | None = element(default=None)
    description: str | None = element(default=None)
    roleFlags: str | None = element(default=None)
    serviceCategoryKind: int | None = element(default=None)
    status: int | None = element(default=None)
    deviceLFDI: str | None = element(default=None)
    readings: list[MirrorMeterReadingIn] | None = element(tag="MirrorMeterReading", default=None)
    postRate: int | None = element(default=None)


class MirrorUsagePointOut(metering_mirror.MirrorUsagePointRequest, tag="MirrorUsagePoint"):
    pass


class ResponseIn(Resource, tag="Response"):
    createdDateTime: int | None = element(default=None)
    endDeviceLFDI: str | None = element(default=None)
    status: int | None = element(default=None)
    subject: str | None = element(default=None)


class DERControlResponseIn(ResponseIn, tag="DERControlResponse"):
    pass


class EndDeviceIn(BaseXmlModelWithNS, tag="EndDevice"):
    deviceCategory: str | None = element(default=None)
    sFDI: int | None = element(default=None)
    lFDI: str | None = element(default=None)
    changedTime: int | None = element(default=None)


class EndDevice(end_device.EndDeviceResponse, tag="EndDevice"):
    pass


class ListLinkAll(ListLink):
    pass


__all__ = [
    "CONTENT_TYPE",
    "CSIPAUS_NAMESPACES",
    "CSIPAUS_NS",
    "LEGACY_NS",
    "NS",
    "ActivePower",
    "DERAvailabilityIn",
    "DERAvailabilityOut",
    "DERCapabilityIn",
    "DERCapabilityOut",
    "DERList",
    "DERSettingsIn",
    "DERSettingsOut",
    "DERStatusIn",
    "DERStatusOut",
    "DeviceInformation",
    "DeviceStatus",
    "EndDevice",
    "EndDeviceIn",
    "Error",
    "Link",
    "ListLink",
    "MirrorMeterReadingIn",
    "MirrorMeterReadingListIn",
    "MirrorUsagePointIn",
    "MirrorUsagePointList",
    "MirrorUsagePointOut",
    "PEVInfo",
    "PowerStatus",
    "ResponseIn",
    "ResponseList",
    "SelfLinkedDER",
    "attr",
]
