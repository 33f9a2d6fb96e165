// auth.js: the sign-in and sign-up screen (built-in accounts, PROTOCOL.md §1).

import { ParleyApi } from './parley.js';
import { h, replaceChildren } from './dom.js';

/**
 * Shows the screen in `root`; calls `onSignedIn({token, user})` once the server gave a token.
 * `notice` is shown above the form (for example "your session expired").
 */
export function showAuth(root, { onSignedIn, notice = '' }) {
  const api = new ParleyApi(location.origin);
  let mode = 'signin';

  const error = h('p', { class: 'form-error', role: 'alert', id: 'auth-error' });
  const username = h('input', {
    id: 'auth-username',
    name: 'username',
    autocomplete: 'username',
    autocapitalize: 'none',
    spellcheck: 'false',
    required: true,
    minlength: 3,
    maxlength: 32,
    pattern: '[A-Za-z0-9._\\-]{3,32}',
    'aria-describedby': 'auth-username-hint',
  });
  const displayName = h('input', {
    id: 'auth-display-name',
    name: 'display_name',
    autocomplete: 'name',
    maxlength: 64,
  });
  const password = h('input', {
    id: 'auth-password',
    name: 'password',
    type: 'password',
    required: true,
    minlength: 8,
    maxlength: 256,
  });
  const submit = h('button', { type: 'submit', class: 'button button--primary' });
  const heading = h('h2', { id: 'auth-heading' });
  const switcher = h('button', { type: 'button', class: 'link-button', onclick: () => setMode(other()) });
  const switchText = h('span');
  const nameField = h(
    'div',
    { class: 'field' },
    h('label', { for: 'auth-display-name' }, 'Display name ', h('span', { class: 'hint' }, '(optional)')),
    displayName,
  );

  const form = h(
    'form',
    { class: 'auth-form', 'aria-labelledby': 'auth-heading', novalidate: true, onsubmit: submitForm },
    heading,
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'auth-username' }, 'Username'),
      username,
      h('p', { class: 'hint', id: 'auth-username-hint' }, '3 to 32 letters, digits, dots, dashes or underscores.'),
    ),
    nameField,
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'auth-password' }, 'Password'),
      password,
      h('p', { class: 'hint', id: 'auth-password-hint' }, 'At least 8 characters.'),
    ),
    error,
    submit,
    h('p', { class: 'switch' }, switchText, ' ', switcher),
  );

  function other() {
    return mode === 'signin' ? 'signup' : 'signin';
  }

  function setMode(next) {
    mode = next;
    const signup = mode === 'signup';
    heading.textContent = signup ? 'Create an account' : 'Sign in';
    submit.textContent = signup ? 'Create account' : 'Sign in';
    switchText.textContent = signup ? 'Already have an account?' : 'New here?';
    switcher.textContent = signup ? 'Sign in' : 'Create an account';
    nameField.hidden = !signup;
    password.autocomplete = signup ? 'new-password' : 'current-password';
    password.setAttribute('aria-describedby', signup ? 'auth-password-hint' : '');
    form.querySelector('#auth-password-hint').hidden = !signup;
    error.textContent = '';
    username.focus();
  }

  async function submitForm(event) {
    event.preventDefault();
    error.textContent = '';
    if (mode === 'signup' && !form.checkValidity()) {
      const invalid = form.querySelector(':invalid');
      error.textContent = invalid === password ? 'The password needs at least 8 characters.' : 'Check the username.';
      invalid.focus();
      return;
    }
    if (!username.value || !password.value) {
      error.textContent = 'Enter your username and password.';
      return;
    }
    submit.disabled = true;
    try {
      const answer =
        mode === 'signup'
          ? await api.register(username.value.trim(), password.value, displayName.value.trim())
          : await api.login(username.value.trim(), password.value);
      onSignedIn(answer);
    } catch (err) {
      error.textContent =
        err.status === 401
          ? 'Wrong username or password.'
          : err.code === 'conflict'
            ? 'That username is taken: pick another one.'
            : err.message || 'Something went wrong.';
      submit.disabled = false;
    }
  }

  replaceChildren(
    root,
    h(
      'main',
      { class: 'auth', id: 'main' },
      h(
        'div',
        { class: 'auth-card' },
        h('h1', { class: 'auth-brand' }, 'Parley'),
        h('p', { class: 'tagline' }, 'Chat with the people on this server.'),
        form,
      ),
    ),
  );
  setMode('signin');
}
