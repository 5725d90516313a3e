# {{crate}}

{{readme}}

---

[str0m's current chat][discord] runs on Discord.

---

[str0m's previous chat][zulip] ran on Zulip and is sponsored by Zulip for open source projects.
<a href="https://zulip.com/"><image width="30px" src="https://raw.githubusercontent.com/zulip/zulip/main/static/images/logo/zulip-icon-circle.svg" alt="Zulip logo"></image></a>

License: {{license}}
