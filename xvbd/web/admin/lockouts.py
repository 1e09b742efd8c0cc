"""Lockouts: the sources refused for guessing codes and PINs (``engine/guard.py``), and
lifting one (journaled as the operator's)."""

from __future__ import annotations

from twisted.web.iweb import IRequest

from xvbd.store.audit import acting
from xvbd.web.admin.base import ROOT, AdminBase, app, log
from xvbd.web.security import Refused, number_arg


class LockoutPages(AdminBase):
    @app.route("/lockouts", methods=["GET"])
    async def lockouts(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        return self.page(request, "admin/lockouts.html", who,
                         lockouts=await self.store.lockouts.current())

    @app.route("/lockouts/<lockout_id>/lift", methods=["POST"])
    async def lockout_lift(self, request: IRequest, lockout_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        with acting(who.actor):
            lifted = await self.store.lockouts.lift(number_arg(lockout_id), who.name)
        if lifted is None:
            raise Refused(404, f"Lockout {lockout_id} is not in force (it ended, or was "
                          "lifted already); the list shows the ones that are.")
        log.info("lockout {id} of {source} ({what}) lifted by {who} from {address}",
                 id=lifted.id, source=lifted.source, what=lifted.what, who=who.name,
                 address=who.address)
        raise self.done(f"{ROOT}/lockouts", f"Lockout {lifted.id} lifted: {lifted.source} "
                        "may try again.")
