// The settings page's only script (the page allows scripts from itself and Keyward, none inline).
// Each <keyward-keys> got its portal token from the server-rendered page; this says how long the
// session lasts, and a reload of the page (which opens fresh sessions) is all it takes after that.
for (const element of document.querySelectorAll("keyward-keys")) {
  const note = element.nextElementSibling?.matches("[data-session-note]") ? element.nextElementSibling : null;
  element.addEventListener("keyward-session", (event) => {
    const until = new Date(event.detail.expires_at);
    if (note)
      note.textContent = `You can manage these keys here until ${until.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}; reload the page to continue after that.`;
  });
}
