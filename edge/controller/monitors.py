"""Monitors: SoC (B1, B2), fault causes (B4), the inverter heartbeat (B7), the restart report."""

from __future__ import annotations

from edge.controller.context import Answer, ControllerContext
from edge.controller.faults import Fault
from edge.controller.machine import ACTIVE, ENERGISED, St
from edge.controller.runner import Program, Stage
from edge.controller.sequences import HEARTBEAT, faults_of


class Monitors(ControllerContext):
    def _check_soc(self) -> None:
        """B1: no fresh SoC (never received included) stops; high/low limits protect."""
        st = self.state
        if st not in ENERGISED or st == St.STOPPING or self._energised_since is None:
            return
        soc = self.p.soc()
        age = self.p.soc_age()
        max_t = self.s.soc_monitor_max_time
        if soc is None or age is None:
            if self.clock() - self._energised_since > max_t:
                self._trip(
                    [
                        Fault(
                            "soc_stale", f"no SoC received within soc_monitor_max_time {max_t:g} s"
                        )
                    ],
                    "SoC monitor",
                )
            return
        if age > max_t:
            self._trip(
                [
                    Fault(
                        "soc_stale", f"SoC is {age:.1f} s old (> soc_monitor_max_time {max_t:g} s)"
                    )
                ],
                "SoC monitor",
            )
            return
        if st == St.CHARGING and soc >= self.s.soc_high_limit:
            self.requested_w = 0.0
            self._goto("soc_high", f"soc {soc:g} >= soc_high_limit {self.s.soc_high_limit:g}")
            self._spawn_setpoint(immediate_zero=True)
        elif st in (St.HOLDING, St.DISCHARGING) and soc <= self.s.soc_low_limit:
            self.requested_w = -self._recovery_w()
            self._goto("soc_low", f"soc {soc:g} <= soc_low_limit {self.s.soc_low_limit:g}")
            self._spawn_setpoint()

    def _recovery_w(self) -> float:
        cmd = self.s.soc_low_recovery_charge_command
        if self.s.user_command_mode == "POWER":
            return cmd
        v = self.p.battery_v()
        return cmd * v if v else 0.0

    def _recovery_done(self) -> bool:
        soc = self.p.soc()
        return soc is not None and soc >= self.s.soc_recovered_level

    def _check_recovery(self) -> None:
        """B2: recovery always ends once SoC >= soc_recovered_level (entry included)."""
        if self.state == St.SOC_RECOVERY and self._recovery_done():
            self.requested_w = 0.0
            soc = self.p.soc()
            self._goto(
                "recovered", f"soc {soc:g} >= soc_recovered_level {self.s.soc_recovered_level:g}"
            )
            self._spawn_setpoint(immediate_zero=True)

    def _end_recovery(self) -> Answer:
        self._check_recovery()
        return self._after(self._setpoint_work, self._reply)

    def _fault_causes(self) -> list[Fault]:
        """Faults whose cause is present in telemetry now (they block start and reset)."""
        causes = self.p.battery_faults() + self.p.inverter_faults()
        for dev in (self.s.battery, self.s.inverter):
            if self.t.status(dev) == "offline":
                causes.append(Fault("device_offline", f"{dev} is offline"))
        return causes

    def _check_faults(self) -> None:
        """Trip on any cause while energised; in `fault`, name causes that appear later too."""
        if self.state not in ENERGISED and self.state != St.FAULT:
            return
        causes = self._fault_causes()
        if self.state in ACTIVE:
            causes += self.p.inverter_faults_active()
        if causes:
            self._trip(causes, "fault detected")

    def _check_heartbeat_lost(self) -> None:
        if self._energised_since is None or self.state not in ENERGISED:
            return
        f = self.p.heartbeat_fault(self.clock() - self._energised_since)
        if f is not None:
            self._trip([f], "inverter heartbeat")

    def _maybe_reset_heartbeat(self) -> None:
        """B7: the heartbeat is kept alive whenever the inverter is energised."""
        if self._energised_since is None or self._running(self._heartbeat_work):
            return
        if self.p.heartbeat_needs_reset():
            self._heartbeat_work = self.runner.run(
                HEARTBEAT,
                Program(
                    "heartbeat reset",
                    [Stage("heartbeat", self.p.reset_heartbeat)],
                    on_done=self._heartbeat_done,
                ),
            )

    def _heartbeat_done(self, errors: list[Exception]) -> None:
        if errors:
            self._trip(faults_of(errors), "heartbeat reset failed")

    def _boot_report(self) -> None:
        """Issue 4 item 9: on restart, report what was found; never resume blindly."""
        self._booted = True
        found = self.p.restart_report()
        self._emit({"kind": "restart", "found": found})
        summary = ", ".join(f"{k}={v}" for k, v in found.items())
        if self.state != St.STOPPED:
            return
        if self.s.on_restart == "stop" and self.p.found_energised(found):
            self._goto(
                "stop", f"restart: found devices energised ({summary}); running the stop sequence"
            )
            self._run_stop()
        else:
            self.reason = f"restart: found {summary}"
            self._changed()
