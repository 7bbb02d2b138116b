from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import ROLE_RANK, Role
from members.services import INVITATION_DAYS, MAX_INVITATION_DAYS

ROLE_HELP = {
    Role.OWNER: "everything, including the organization's owners",
    Role.ADMIN: "members, API keys, the audit log, the trash and legal holds",
    Role.MEMBER: "upload, share and delete artifacts; run sandboxes",
    Role.VIEWER: "look and download, change nothing",
}


def roles_up_to(role: str) -> list[tuple[str, str]]:
    """The roles someone with ``role`` may grant: their own and those below it."""
    return [(value, label) for value, label in Role.choices if ROLE_RANK[Role(value)] <= ROLE_RANK[Role(role)]]


class InviteForm(forms.Form):
    role = forms.ChoiceField(label="Role", initial=Role.MEMBER)
    note = forms.CharField(
        label="For", max_length=200, required=False, help_text="Whom the link is for, so you recognise it later."
    )
    expires_in_days = forms.IntegerField(
        label="Link works for (days)", min_value=1, max_value=MAX_INVITATION_DAYS, initial=INVITATION_DAYS
    )

    def __init__(self, *args, granter_role: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = roles_up_to(granter_role)


class RoleForm(forms.Form):
    # Any text, so that the service, not the form, answers a role that does not exist.
    role = forms.CharField(max_length=40)


class RemoveForm(forms.Form):
    keys = forms.ChoiceField(
        label="Their API keys",
        widget=forms.RadioSelect,
        initial="revoke",
        choices=[
            ("revoke", "Revoke them: anything that uses them is refused from now on"),
            ("reassign", "Keep them working, as keys you created"),
        ],
    )


class OrganizationForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    owner = forms.CharField(
        label="Owner's username",
        max_length=150,
        required=False,
        help_text="An existing account. Leave it empty to get an owner invitation link instead.",
    )


class JoinSignUpForm(UserCreationForm):
    """A new account, made only together with accepting an invitation."""
