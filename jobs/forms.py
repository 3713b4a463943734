"""Forms of the profile page: the owner's Crypt4GH public key and API token names."""

from __future__ import annotations

import base64

from django import forms

from security.keys import crypt4gh_public_key_from_text, fingerprint


def armored_public_key(raw_key: bytes) -> str:
    """The key in the form ``crypt4gh-keygen`` writes, whatever form it was pasted in."""
    body = base64.b64encode(raw_key).decode("ascii")
    return f"-----BEGIN CRYPT4GH PUBLIC KEY-----\n{body}\n-----END CRYPT4GH PUBLIC KEY-----\n"


class Crypt4GHPublicKeyForm(forms.Form):
    public_key = forms.CharField(
        label="Crypt4GH public key",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocomplete": "off"}),
        help_text=(
            "Paste the .pub file made by crypt4gh-keygen (from -----BEGIN CRYPT4GH PUBLIC KEY----- "
            "to -----END CRYPT4GH PUBLIC KEY-----). Never paste the private key."
        ),
        max_length=2000,
    )

    def clean_public_key(self) -> str:
        try:
            raw_key = crypt4gh_public_key_from_text(self.cleaned_data["public_key"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error
        self.fingerprint = fingerprint(raw_key)
        return armored_public_key(raw_key)


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label="Token name",
        max_length=100,
        help_text="What the token is for, e.g. “sequencer upload script”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the token a name.")
        return name
