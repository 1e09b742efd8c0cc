"""Mail: the outbox's dead letters (mail the relay refused, or that failed ``[EMAIL]
MAX_TRIES`` times) with the reason, and sending one again (journaled as the operator's)."""

from __future__ import annotations

from twisted.web.iweb import IRequest

from xvbd.store.audit import acting
from xvbd.web.admin.base import ROOT, AdminBase, app, log
from xvbd.web.security import Refused, number_arg


class MailPages(AdminBase):
    @app.route("/mail", methods=["GET"])
    async def mail_dead_letters(self, request: IRequest) -> bytes:
        who = await self.staff(request, admin=True)
        return self.page(request, "admin/mail.html", who,
                         dead=await self.store.outbox.dead_letters(),
                         counts=await self.store.outbox.counts(),
                         relay=str(self.settings.email.server))

    @app.route("/mail/<mail_id>/resend", methods=["POST"])
    async def mail_resend(self, request: IRequest, mail_id: str) -> bytes:
        who = await self.staff(request, admin=True, change=True)
        with acting(who.actor):
            mail = await self.store.outbox.resend(number_arg(mail_id))
        if mail is None:
            raise Refused(404, f"Mail {mail_id} is not a dead letter (it was sent, or queued "
                          "again already); the list shows the dead letters.")
        log.info("mail {id} for user {user} to {to} queued again by {who} from {address}",
                 id=mail.id, user=mail.user_id, to=mail.recipients, who=who.name,
                 address=who.address)
        if self.mail_queued is not None:
            self.mail_queued()
        raise self.done(f"{ROOT}/mail", f"Mail {mail.id} queued again: it is sent within "
                        "moments if the relay takes it.")
